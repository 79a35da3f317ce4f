"""The ``objsearch`` command line (see :mod:`.app`); ``main`` is the console script."""

from __future__ import annotations

from indexer.settings import configure_ultralytics

from .app import app, err
from .duplicates import duplicates
from .indexing import doctor, export, index, status
from .models import models_app
from .query import localize, search
from .serve import serve

# Registered here, in the order ``objsearch --help`` lists them.
for _command in (index, search, localize, duplicates, export, status, doctor, serve):
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
    app()


__all__ = ["app", "main"]
