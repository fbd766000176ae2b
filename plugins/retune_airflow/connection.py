"""Our store's URL from the Airflow Connection ``retune_db``, for deployments that keep database
credentials in Airflow (a secrets backend, ``AIRFLOW_CONN_RETUNE_DB``) rather than in
``RETUNE_DB_URL``. An explicit ``RETUNE_DB_URL`` wins."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

CONN_ID = "retune_db"
DRIVERS = {"postgres": "postgresql+psycopg2", "postgresql": "postgresql+psycopg2", "sqlite": "sqlite"}


def connection_url(conn) -> str:
    """A SQLAlchemy URL for an Airflow Connection (``postgres`` or ``sqlite``)."""
    from sqlalchemy.engine import URL

    driver = DRIVERS.get(conn.conn_type or "")
    if driver is None:
        raise ValueError(f"connection {CONN_ID!r} has type {conn.conn_type!r}; use postgres (or sqlite)")
    if driver == "sqlite":
        return f"sqlite:///{conn.host or conn.schema}"
    url = URL.create(
        driver,
        username=conn.login,
        password=conn.password,
        host=conn.host,
        port=conn.port,
        database=conn.schema,
    )
    return url.render_as_string(hide_password=False)


def use_retune_connection() -> None:
    """Inside a task: point RETUNE_DB_URL at the ``retune_db`` Connection when it exists and
    the environment does not already say where the store is."""
    if os.environ.get("RETUNE_DB_URL"):
        return
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(CONN_ID)
    except AirflowNotFoundException:
        return  # the embedded default (SQLite under RETUNE_HOME)
    os.environ["RETUNE_DB_URL"] = connection_url(conn)
    log.info("store: Airflow connection %s (%s on %s)", CONN_ID, conn.conn_type, conn.host)
