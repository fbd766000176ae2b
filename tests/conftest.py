"""Shared test helpers: small seeded synthetic OHLCV bars and a quiet, fast environment."""

from __future__ import annotations

import os
import tempfile
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


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh PostgreSQL database (``retune_test_<random>``) with our migrations applied; dropped afterwards.

    PostgreSQL is required, not optional: if it is down the tests fail with a message that says so,
    because production runs on PostgreSQL and a silently skipped backend proves nothing.
    """
    from devtools.throwaway_pg import PostgresUnavailable, throwaway_database
    from pipelines.store.migrate import upgrade

    try:
        with throwaway_database() as url:
            upgrade(url)
            yield url
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
