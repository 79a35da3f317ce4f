from indexer.indexing.caption import caption, plural


def test_caption_counts_like_the_article() -> None:
    assert caption(["cat", "remote", "cat", "couch"]) == "2 cats, 1 couch, 1 remote"
    assert caption([]) == ""


def test_plurals() -> None:
    assert plural("person", 3) == "people"
    assert plural("bus", 2) == "buses"
    assert plural("teddy bear", 2) == "teddy bears"
    assert plural("skis", 2) == "skis"
    assert plural("cat", 1) == "cat"
