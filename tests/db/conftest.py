"""Database fixtures: every store test runs on SQLite and on a real, throwaway PostgreSQL database.

PostgreSQL is required, not optional: if it is down the tests fail with a message that says so,
because production runs on PostgreSQL and a silently skipped backend proves nothing.
"""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pipelines.store.migrate import upgrade
from pipelines.store.repository import Repository

ADMIN_URL = os.environ.get("RETUNE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TABLES = (
    "retune_audit",
    "retune_config_versions",
    "retune_model_versions",
    "retune_narrowing_firings",
    "retune_runs",
)


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh database (``retune_test_<uuid>``) with our migrations applied; dropped afterwards."""
    import psycopg2
    from psycopg2 import sql

    try:
        admin = psycopg2.connect(ADMIN_URL, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is required for tests/db but is not reachable at {ADMIN_URL}: "
            f"{str(exc).strip()}\nStart it (CI: .ci/run starts the local cluster) or point "
            "RETUNE_TEST_POSTGRES_URL at a server where the user may CREATE DATABASE.",
            pytrace=False,
        )
    admin.autocommit = True
    name = f"retune_test_{uuid.uuid4().hex[:16]}"
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = (
        make_url(ADMIN_URL)
        .set(drivername="postgresql+psycopg2", database=name)
        .render_as_string(hide_password=False)
    )
    try:
        upgrade(url)
        yield url
    finally:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A migrated, empty database of each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db' / 'retune.db'}"  # folder not created yet, on purpose
        upgrade(url)
        yield url
        return
    url = request.getfixturevalue("postgres_url")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY"))
    finally:
        engine.dispose()
    yield url


@pytest.fixture
def repo(db_url):
    repository = Repository(db_url)
    yield repository
    repository.close()
