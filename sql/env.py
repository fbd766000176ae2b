"""Alembic environment for Retune's own tables (script_location = sql)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from pipelines.settings import load_settings
from pipelines.store.tables import Base

VERSION_TABLE = "retune_alembic_version"  # never collide with Airflow's alembic_version

config = context.config
url = config.get_main_option("sqlalchemy.url") or load_settings().db_url


def run_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        connectable = engine_from_config(
            {"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool
        )
    with connectable.connect() if hasattr(connectable, "connect") else connectable as conn:
        context.configure(
            connection=conn,
            target_metadata=Base.metadata,
            version_table=VERSION_TABLE,
            render_as_batch=conn.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
