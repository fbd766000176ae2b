"""Storage resilience: how long a worker rides out a database outage, and which errors are one."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import optuna
import sqlalchemy as sa

from pipelines.config import ConfigError

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 60  # default; RETUNE_HEARTBEAT_SECONDS overrides it (the fault tests use 1)
STORAGE_PATIENCE_SECONDS = 300  # default; RETUNE_STORAGE_PATIENCE_SECONDS: how long a worker rides out
# a database outage before it gives up (its task then fails and Airflow retries it)
STORAGE_ERRORS: tuple[type[Exception], ...] = (
    optuna.exceptions.StorageInternalError,
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
)


def env_seconds(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{name}={raw!r}: a whole number of seconds >= 1")
    return int(raw)


def heartbeat_seconds() -> int:
    """How often a running trial records that its worker is alive (``RETUNE_HEARTBEAT_SECONDS``,
    default 60). A trial is stale, failed and retried after two missed intervals."""
    return env_seconds("RETUNE_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def retrying(call: Callable[[], Any], patience: int) -> Any:
    waited = 0.0
    while True:
        try:
            return call()
        except STORAGE_ERRORS as exc:
            if waited > patience:
                raise
            log.warning("optuna storage unreachable, retrying: %s", short_error(exc))
            time.sleep(2.0)
            waited += 2.0


def storage_failure(exc: BaseException) -> bool:
    """Whether the database caused ``exc``. Optuna 5's ``_run_trial`` can turn a storage error into
    an ``UnboundLocalError`` (its ``finally`` reads ``updated_state`` when both ``tell`` and the
    re-read of the trial failed), so the chain of causes is searched, not just the type."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, STORAGE_ERRORS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def short_error(exc: BaseException) -> str:
    text = str(exc.__cause__ or exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
