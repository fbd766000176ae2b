"""One study's workers take turns at "count the budget, then take a trial"."""

from __future__ import annotations

import contextlib
import time

import sqlalchemy as sa

from pipelines.search.storage import is_sqlite
from pipelines.store.keys import advisory_key


class StudyLock:
    """Serializes "count the budget, then take a trial" across the workers of one study.

    A PostgreSQL session-level advisory lock keyed by the study name, on a connection of its own
    that the worker keeps (one server backend per worker, not one per trial): if the worker dies
    the server drops the connection and the lock with it; if the connection breaks, the next
    ``with`` opens a new one. SQLite takes one worker only, so there it is a no-op.
    """

    def __init__(self, url: str, name: str) -> None:
        self._engine = None if is_sqlite(url) else sa.create_engine(url, poolclass=sa.pool.NullPool)
        self._key = advisory_key(name)
        self._conn: sa.Connection | None = None
        self._held = False
        self._since = 0.0
        self.held_seconds = 0.0  # how long this worker held the lock in all: the bench reads it

    def __enter__(self) -> StudyLock:
        if self._engine is not None:
            try:
                if self._conn is None:  # autocommit: no transaction left open between trials
                    self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                self._conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": self._key})
            except BaseException:
                self._drop()  # a lock it may have got goes with the connection
                raise
            self._held = True
        self._since = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        self.held_seconds += time.monotonic() - self._since
        try:
            assert self._conn is not None
            self._conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
        except sa.exc.SQLAlchemyError:
            self._drop()  # the connection is gone, and the server released the lock with it

    def close(self) -> None:
        """Release the lock if held and close the connection (a worker that is done)."""
        self.release()
        self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                conn.close()
