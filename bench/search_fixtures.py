"""Shared pieces of the search benchmarks: small real searches on seeded series.

Every arm runs the production code path (``run_study``: walk-forward folds, torch training,
vectorbt scoring, Optuna on an SQLite RDB store) with a deliberately small model so that a
benchmark can afford several seeds. Series are synthetic OHLCV bars whose return process is
known, so "no edge" and "the oracle" are facts, not estimates.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from pipelines.config import PipelineConfig
from pipelines.config_files import parse_config

SEARCH_SPACE = {
    "lr": {"type": "loguniform", "low": 3e-4, "high": 3e-2},
    "hidden_size": {"type": "categorical", "choices": [4, 8, 16]},
    "seq_len": {"type": "int", "low": 5, "high": 20, "step": 5},
    "dropout": {"type": "uniform", "low": 0.0, "high": 0.3},
    "entry_threshold": {"type": "uniform", "low": 0.0, "high": 0.5},
    "long_short": {"type": "categorical", "choices": [False, True]},
}


def small_config(**overrides: Any) -> PipelineConfig:
    """A walk-forward setup small enough for many seeds: 2-epoch LSTMs, 3 folds of 80 bars."""
    raw: dict[str, Any] = {
        "epochs": 2,
        "batch_size": 128,
        "window_bars": 900,
        "n_folds": 3,
        "val_bars": 80,
        "fees": 0.0005,
        "strategy_grid_points": 4,
        "search_space": SEARCH_SPACE,
    }
    return parse_config(raw | overrides)


def bars_from_log_returns(log_returns: np.ndarray, seed: int, start: str = "2000-01-03") -> pd.DataFrame:
    """OHLCV bars whose close-to-close log returns are exactly ``log_returns``."""
    rng = np.random.default_rng(seed + 10_000)
    n = len(log_returns)
    close = 100.0 * np.exp(np.cumsum(log_returns))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0, 0.002, n))
    top, bottom = np.maximum(open_, close), np.minimum(open_, close)
    return pd.DataFrame(
        {
            "timestamp": pd.bdate_range(start, periods=n).astype("datetime64[ns]"),
            "open": open_,
            "high": top * (1 + rng.uniform(0, 0.004, n)),
            "low": bottom * (1 - rng.uniform(0, 0.004, n)),
            "close": close,
            "volume": rng.integers(10_000, 100_000, n).astype(float),
        }
    )


def random_walk(n: int, seed: int, vol: float = 0.01) -> pd.DataFrame:
    """No edge exists: i.i.d. zero-mean returns."""
    return bars_from_log_returns(np.random.default_rng(seed).normal(0.0, vol, n), seed)


def regime_drift(n: int, seed: int, drift: float = 0.004, switch: float = 0.01, vol: float = 0.01):
    """A planted predictable component: the mean return is +drift or -drift, switching with
    probability ``switch`` per bar (regimes last ~1/switch bars on average). Returns (bars, regime signs)."""
    rng = np.random.default_rng(seed)
    flips = rng.random(n) < switch
    regime = np.where(np.cumsum(flips) % 2 == 0, 1.0, -1.0)
    return bars_from_log_returns(drift * regime + rng.normal(0.0, vol, n), seed), regime


def sqlite_url(tag: str) -> str:
    """A fresh Optuna/RDB store in a temporary directory, removed when the benchmark exits."""
    directory = Path(tempfile.mkdtemp(prefix=f"retune-bench-{tag}-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return f"sqlite:///{directory / 'optuna.db'}"


def over_seeds(one_seed: Callable[[int], dict], seeds: Iterable[int], *shown: str) -> dict[int, dict]:
    """``one_seed`` per seed, printing the ``shown`` numbers as it goes (a benchmark takes minutes)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows: dict[int, dict] = {}
    for seed in seeds:
        rows[seed] = one_seed(seed)
        print(f"   seed {seed}: " + ", ".join(f"{k} {rows[seed][k]}" for k in shown), flush=True)
    return rows


def median(values: list[float]) -> float:
    return float(np.median(np.asarray(values, dtype=float)))


def random_points(space: dict, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` configurations drawn at random from a model search space (seeded)."""
    from pipelines.search.space import suggest

    draws = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    points = []
    for _ in range(n):
        trial = draws.ask()
        points.append(suggest(trial, space))
        draws.tell(trial, 0.0)
    return points
