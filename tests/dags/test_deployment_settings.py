"""Deployment settings: the store from the Airflow Connection `retune_db`, schedules from the environment."""

from __future__ import annotations

import os

import pytest
from retune_airflow.connection import connection_url, use_retune_connection


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv("RETUNE_DB_URL", raising=False)
    yield monkeypatch
    os.environ.pop("RETUNE_DB_URL", None)


def test_the_connection_becomes_a_psycopg2_url(clean_env):
    clean_env.setenv("AIRFLOW_CONN_RETUNE_DB", "postgres://retune:p%40ss@db.example:5432/retune")
    use_retune_connection()
    assert os.environ["RETUNE_DB_URL"] == "postgresql+psycopg2://retune:p%40ss@db.example:5432/retune"
    from pipelines.settings import load_settings

    assert load_settings().optuna_url == os.environ["RETUNE_DB_URL"]


def test_an_explicit_url_wins_and_no_connection_keeps_the_default(clean_env):
    clean_env.setenv("AIRFLOW_CONN_RETUNE_DB", "postgres://retune:x@db.example:5432/retune")
    clean_env.setenv("RETUNE_DB_URL", "sqlite:////tmp/explicit.db")
    use_retune_connection()
    assert os.environ["RETUNE_DB_URL"] == "sqlite:////tmp/explicit.db"
    clean_env.delenv("RETUNE_DB_URL")
    clean_env.delenv("AIRFLOW_CONN_RETUNE_DB")
    use_retune_connection()
    assert "RETUNE_DB_URL" not in os.environ


def test_an_unsupported_connection_type_is_named():
    from airflow.sdk import Connection

    with pytest.raises(ValueError, match="'mysql'"):
        connection_url(Connection(conn_id="retune_db", conn_type="mysql", host="h"))


@pytest.mark.parametrize(
    ("value", "expected"), [(None, "0 22 * * 1-5"), ("none", None), ("@hourly", "@hourly")]
)
def test_schedules_are_configurable_by_environment(monkeypatch, value, expected):
    from retune_airflow.dag_factory import build_dag

    if value is None:
        monkeypatch.delenv("RETUNE_DAILY_SCHEDULE", raising=False)
    else:
        monkeypatch.setenv("RETUNE_DAILY_SCHEDULE", value)
    dag = build_dag("daily")
    assert dag.schedule == expected
    assert dag.max_active_runs == 1


def test_the_scheduler_preload_imports_the_task_libraries_and_starts_no_thread():
    """Tasks fork from the scheduler: its preload must leave a fork-safe process (one thread)."""
    import subprocess
    import sys

    code = (
        "import sys, threading\n"
        "from retune_airflow.scheduler import preload\n"
        "preload()\n"
        "print(threading.active_count(), 'torch' in sys.modules, 'vectorbt' in sys.modules,"
        " 'great_expectations' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-4:] == ["1", "True", "True", "True"]


def test_search_workers_pool_queue_and_retry_delay_come_from_the_environment(monkeypatch):
    from datetime import timedelta

    from retune_airflow.dag_factory import build_dag

    default = build_dag("daily").get_task("search_worker")
    assert default.pool == "default_pool" and default.retry_delay == timedelta(minutes=1)
    monkeypatch.setenv("RETUNE_SEARCH_POOL", "retune_search")
    monkeypatch.setenv("RETUNE_SEARCH_QUEUE", "search")
    monkeypatch.setenv("RETUNE_RETRY_DELAY_SECONDS", "5")
    placed = build_dag("daily").get_task("search_worker")
    assert (placed.pool, placed.queue) == ("retune_search", "search")
    assert placed.retry_delay == timedelta(seconds=5)
    monkeypatch.setenv("RETUNE_RETRY_DELAY_SECONDS", "soon")
    with pytest.raises(ValueError, match="RETUNE_RETRY_DELAY_SECONDS='soon': a whole number of seconds"):
        build_dag("daily")
