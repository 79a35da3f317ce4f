"""``serve --watch``: the folder watcher on a background thread of the server process.

The thread indexes while the server answers; the server's searcher follows the store, so
each committed batch is searchable at once. The app's lifespan starts the thread and, at
shutdown, asks the watcher to stop at its next commit and waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from indexer.errors import ObjsearchError, first_line
from indexer.indexing.watch import Watcher

log = logging.getLogger("objsearch.serve")

STOP_WAIT_S = 60.0  # the longest a shutdown waits for the batch in flight to commit


class BackgroundWatcher:
    """Runs a :class:`Watcher` on a daemon thread, and logs one line per batch."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher
        watcher.on_batch = lambda batch: log.info("watch %s", batch.describe())
        self._thread = threading.Thread(target=self._run, name="objsearch-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        self.watcher.stop()
        await asyncio.to_thread(self._thread.join, STOP_WAIT_S)

    def _run(self) -> None:
        try:
            self.watcher.run()
        except ObjsearchError as exc:  # a model that cannot load: the server still serves
            log.error("watching stopped: %s", exc)
            self.watcher.note_error(f"watching stopped: {first_line(exc)}")
        except Exception as exc:
            log.exception("watching stopped")
            self.watcher.note_error(f"watching stopped: {first_line(exc)}")
