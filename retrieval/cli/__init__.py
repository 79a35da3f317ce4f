"""The ``objsearch`` command line (see :mod:`.app`); ``main`` is the console script."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from indexer.settings import configure_ultralytics

from .app import app, err
from .duplicates import duplicates
from .indexing import doctor, export, index, status
from .models import models_app
from .query import localize, search
from .serve import serve
from .watch import watch

# Registered here, in the order ``objsearch --help`` lists them.
for _command in (index, watch, search, localize, duplicates, export, status, doctor, serve):
    app.command()(_command)
app.add_typer(models_app, name="models")


def main() -> None:
    """Console-script entry point."""
    import logging

    from rich.logging import RichHandler

    configure_ultralytics()
    handler = RichHandler(console=err, show_time=False, show_path=False, show_level=False)
    logging.getLogger("objsearch").addHandler(handler)
    logging.getLogger("objsearch").setLevel(logging.INFO)
    try:
        app()
    except SystemExit as exc:
        if sys.argv[1:2] == ["search"]:
            _quick_exit(exc.code)
        raise


def _quick_exit(code: object) -> NoReturn:
    """End a finished read-only command without the interpreter's teardown.

    A search has written its output and closed the index by now; what is left is unloading
    OpenVINO and FAISS with their thread pools, about a quarter of a second of a cold text
    search's one-second budget.
    """
    import logging

    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)  # what SystemExit would print
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe: the output went where it could
        code = code or 1
    logging.shutdown()
    os._exit(code or 0)


__all__ = ["app", "main"]
