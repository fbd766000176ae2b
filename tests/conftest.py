"""Shared test helpers: small seeded synthetic OHLCV bars and a quiet, fast environment."""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# Numba (vectorbt) compiles on first call; a persistent cache keeps repeated runs fast.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "retune-test-numba-cache"))


def synthetic_bars(
    n: int = 300,
    seed: int = 0,
    start: str = "2020-01-01",
    drift: float = 0.0002,
    vol: float = 0.01,
) -> pd.DataFrame:
    """``n`` business-day OHLCV bars from a seeded geometric random walk.

    Guarantees high >= max(open, close), low <= min(open, close), all prices > 0, volume > 0.
    """
    rng = np.random.default_rng(seed)
    timestamps = pd.bdate_range(start, periods=n)
    log_ret = rng.normal(drift, vol, n)
    close = 100.0 * np.exp(np.cumsum(log_ret))
    open_ = np.empty(n)
    open_[0] = 100.0
    open_[1:] = close[:-1] * np.exp(rng.normal(0.0, vol / 4, n - 1))
    top = np.maximum(open_, close)
    bottom = np.minimum(open_, close)
    high = top * (1.0 + rng.uniform(0.0, vol, n))
    low = bottom * (1.0 - rng.uniform(0.0, vol, n))
    volume = rng.integers(1_000, 100_000, n).astype(float)
    return pd.DataFrame(
        {
            "timestamp": timestamps.astype("datetime64[ns]"),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )


@pytest.fixture
def bars() -> pd.DataFrame:
    """300 clean synthetic bars (seed 0)."""
    return synthetic_bars(300, seed=0)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Keep every test's RETUNE_HOME / DB out of the developer's ./var."""
    home = tmp_path_factory.mktemp("retune-home")
    monkeypatch.setenv("RETUNE_HOME", str(home))
    monkeypatch.delenv("RETUNE_DB_URL", raising=False)
    monkeypatch.delenv("RETUNE_OPTUNA_URL", raising=False)
    monkeypatch.delenv("RETUNE_DATA_DIR", raising=False)


@pytest.fixture(scope="session")
def make_bars():
    """The ``synthetic_bars`` factory, for tests that need several or custom-sized frames."""
    return synthetic_bars


POSTGRES_ADMIN_URL = os.environ.get(
    "RETUNE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh PostgreSQL database (``retune_test_<uuid>``) with our migrations applied; dropped afterwards.

    PostgreSQL is required, not optional: if it is down the tests fail with a message that says so,
    because production runs on PostgreSQL and a silently skipped backend proves nothing.
    """
    import psycopg2
    from psycopg2 import sql
    from sqlalchemy.engine import make_url

    from pipelines.store.migrate import upgrade

    try:
        admin = psycopg2.connect(POSTGRES_ADMIN_URL, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is required for tests/db but is not reachable at {POSTGRES_ADMIN_URL}: "
            f"{str(exc).strip()}\nStart it (CI: .ci/run starts the local cluster) or point "
            "RETUNE_TEST_POSTGRES_URL at a server where the user may CREATE DATABASE.",
            pytrace=False,
        )
    admin.autocommit = True
    name = f"retune_test_{uuid.uuid4().hex[:16]}"
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = (
        make_url(POSTGRES_ADMIN_URL)
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
