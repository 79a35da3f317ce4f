"""Photo files: find them (:mod:`.scan`) and read them into RGB images (:mod:`.decode`)."""
