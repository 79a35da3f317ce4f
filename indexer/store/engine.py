"""Opening an index database: the SQLAlchemy engine, the schema, meta and the writer lock.

The base every part of :class:`~indexer.store.database.Store` builds on: it opens (or
creates) the SQLite file, upgrades an older schema, turns driver errors into the store's
own messages (see :mod:`.write_errors`) and holds the writer lock while a run writes.
"""

from __future__ import annotations

import os
import sqlite3

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session

from ..errors import CorruptIndexError, StoreError, first_line
from ..settings import expand_path
from .folder import check_creatable, not_writable, read_only_filesystem, writable_folder
from .lock import acquire_writer_lock, release_writer_lock
from .migrations import upgrade
from .schema import (
    DB_NAME,
    FAISS_NAME,
    LOCK_NAME,
    SCHEMA_VERSION,
    SEARCH_DDL,
    TEXT_DDL,
    Base,
    Meta,
)
from .write_errors import is_corruption, is_write_failure, write_error

PAGE_CACHE_KB = 65536


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    cur = dbapi_conn.cursor()
    # 16 KB pages for a new database (an existing one keeps its own): rows of 1-2 KB (a
    # vector each) left a quarter to half of every 4 KB page empty, 1.76 KB per region
    # against 1.2 KB of data; the page size is fixed once the first table exists.
    cur.execute("PRAGMA page_size=16384")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    # Up to 64 MB of pages per connection (SQLite's default is 2 MB): a compressed search
    # reads 1,000 regions by id, and with the B-trees' interior pages cached each read costs
    # one leaf page. 1,000 new ids from a 10M-region store: 120-230 ms -> 8-38 ms.
    cur.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KB}")
    cur.close()


class StoreEngine:
    """Opens (or creates) an index folder's database. One writer at a time, any readers."""

    def __init__(self, index_dir: str | os.PathLike[str], *, create: bool = False) -> None:
        self.dir = expand_path(index_dir)
        self.db_path = os.path.join(self.dir, DB_NAME)
        self.faiss_path = os.path.join(self.dir, FAISS_NAME)
        self.lock_path = os.path.join(self.dir, LOCK_NAME)
        self._lock_fd: int | None = None
        if not os.path.exists(self.db_path):
            self._make_folder(create)
        if create and not writable_folder(self.dir):
            raise StoreError(not_writable(self.dir, self.dir))
        # Nobody can write a read-only file system, so SQLite may skip its WAL index (which
        # it could not create there) and read the file as it is.
        self.read_only = not create and read_only_filesystem(self.dir)
        url = f"sqlite:///file:{self.db_path}?immutable=1&uri=true"
        self.engine = create_engine(
            url if self.read_only else f"sqlite:///{self.db_path}", connect_args={"timeout": 30}
        )
        if not self.read_only:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        event.listen(self.engine, "handle_error", self._on_error)
        try:
            self._init_schema(create)
        except (DatabaseError, sqlite3.DatabaseError) as exc:
            self.engine.dispose()
            raise self._corrupt(exc) from None
        except StoreError:
            self.engine.dispose()
            raise

    def _make_folder(self, create: bool) -> None:
        """Create the folder of a new index, or say how to build one."""
        if not create:
            raise StoreError(
                f"No objsearch index at {self.dir}: build one with "
                f"'objsearch index PHOTOS_DIR --index {self.dir}'."
            )
        check_creatable(self.dir)
        try:
            os.makedirs(self.dir, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create index folder {self.dir}: {exc.strerror}") from None

    def _corrupt(self, exc: BaseException) -> CorruptIndexError:
        return CorruptIndexError(
            f"The index database {self.db_path} is unreadable or corrupt ({first_line(exc)}). "
            f"Run 'objsearch doctor --index {self.dir}' to recover what it still holds."
        )

    def _on_error(self, context: ExceptionContext) -> None:
        """Turn corruption found by any later query into the same clear error as at open.

        A damaged page can hide until a query reads it (the schema page opens fine), so the
        check at open time alone would let a raw driver error out of search, index or status.
        """
        if is_corruption(context.original_exception):
            raise self._corrupt(context.original_exception) from None
        if is_write_failure(context.original_exception):
            raise write_error(self.dir, context.original_exception) from None

    def _init_schema(self, create: bool) -> None:
        with self.engine.begin() as conn:
            conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
        if create:
            Base.metadata.create_all(self.engine)
        version = self.get_meta("schema_version")
        if version is None:
            if not create:
                raise StoreError(f"{self.db_path} is not an objsearch index (no schema version).")
            with self.engine.begin() as conn:
                for statement in (*SEARCH_DDL, *TEXT_DDL):
                    conn.exec_driver_sql(statement)
            self.set_meta(schema_version=SCHEMA_VERSION, generation=0)
            return
        upgrade(self.db_path, int(version))

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.unlock()
        self.engine.dispose()

    # -- meta ----------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        with self.session() as s:
            return {m.key: m.value for m in s.scalars(select(Meta))}

    def get_meta(self, key: str) -> str | None:
        with self.session() as s:
            row = s.get(Meta, key)
            return row.value if row else None

    def set_meta(self, **values: object) -> None:
        with self.session() as s, s.begin():
            for key, value in values.items():
                s.merge(Meta(key=key, value=str(value)))

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation") or 0)

    # -- locking -------------------------------------------------------------------------
    def lock(self) -> None:
        """Take the writer lock or raise :class:`IndexLockedError` naming the holder's PID."""
        self._lock_fd = acquire_writer_lock(self.dir)

    def unlock(self) -> None:
        if self._lock_fd is not None:
            release_writer_lock(self._lock_fd)
            self._lock_fd = None
