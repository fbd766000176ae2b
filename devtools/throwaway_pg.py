"""Throwaway PostgreSQL databases for tests and benchmarks: created fresh, always dropped.

PostgreSQL is the production store, so tests that need it fail (never skip) when it is down.
``RETUNE_TEST_POSTGRES_URL`` names an admin connection that may CREATE DATABASE.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

ADMIN_URL = os.environ.get("RETUNE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


class PostgresUnavailable(RuntimeError):
    """The admin connection failed; the message says where and how to fix it."""


@contextmanager
def throwaway_database(prefix: str = "retune_test", admin_url: str = ADMIN_URL) -> Iterator[str]:
    """A fresh database ``<prefix>_<random>``; yields its SQLAlchemy (psycopg2) URL."""
    import psycopg2
    from psycopg2 import sql
    from sqlalchemy.engine import make_url

    try:
        admin = psycopg2.connect(admin_url, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        raise PostgresUnavailable(
            f"PostgreSQL is required but not reachable at {admin_url}: {str(exc).strip()}\n"
            "Start it (CI: .ci/run starts the local cluster) or point RETUNE_TEST_POSTGRES_URL at a "
            "server where the user may CREATE DATABASE."
        ) from None
    admin.autocommit = True
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = make_url(admin_url).set(drivername="postgresql+psycopg2", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.close()
