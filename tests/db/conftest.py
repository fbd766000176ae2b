"""Database fixtures: every store test runs on SQLite and on the throwaway PostgreSQL database
(``postgres_url``, in tests/conftest.py)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from pipelines.store.migrate import upgrade
from pipelines.store.repository import Repository

TABLES = (
    "retune_audit",
    "retune_config_versions",
    "retune_model_versions",
    "retune_narrowing_firings",
    "retune_runs",
    "retune_selection_ledger",
)


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
