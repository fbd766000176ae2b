"""Apply the Alembic migrations in ``sql/`` to our database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

SCRIPT_LOCATION = Path(__file__).resolve().parents[2] / "sql"


def alembic_config(db_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    return config


def upgrade(db_url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision``; safe to run on every start."""
    ensure_sqlite_dir(db_url)
    command.upgrade(alembic_config(db_url), revision)


def ensure_sqlite_dir(db_url: str) -> None:
    """SQLite creates the file but not its folder: make the folder for a fresh RETUNE_HOME."""
    from sqlalchemy.engine import make_url

    url = make_url(db_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
