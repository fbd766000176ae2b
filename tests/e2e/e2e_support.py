"""Helpers the end-to-end tests import: paths, the as-of date, bar files, running a command.

Not in conftest.py: ``from conftest import`` takes whichever conftest module pytest imported
last (tests/db/ has one too), so it broke when files of both directories were collected.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
AS_OF = "2021-09-30"
# A small training budget on top of the daily defaults, for runs that test the chain's plumbing
# (two seeds still make an ensemble; 2 epochs on every training bar) on the 700 bars of
# `random_walk_bars`: a shorter walk-forward than the daily default's 3 x 252, which needs 1,076
# bars. `retune run` in test_cli.py runs the defaults as they are, on the 1,200 bars of good.csv.
PLUMBING_WALK_FORWARD = {"window_bars": 600, "n_folds": 2, "val_bars": 126}
PLUMBING_BUDGET = {"seeds_per_trial": 2, "epochs": 2, **PLUMBING_WALK_FORWARD}
GOOD_BARS = 1200


def random_walk_bars(n: int = 700, seed: int = 7, end: str = AS_OF) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.01, n)))
    open_ = close * np.exp(rng.normal(0, 0.003, n))
    spread = np.abs(rng.normal(0, 0.004, n))
    return pd.DataFrame(
        {
            "timestamp": pd.bdate_range(end=end, periods=n),
            "open": open_,
            "high": np.maximum(open_, close) * (1 + spread),
            "low": np.minimum(open_, close) * (1 - spread),
            "close": close,
            "volume": rng.integers(1_000, 10_000, n).astype(float),
        }
    )


def run(cmd: list[str], env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def seed_a_champion(repo, model_key: str, run) -> None:
    """Promote ``run``'s best config and its model (version 1) as the champion, as an operator
    would: a run on random-walk bars rarely passes the gate, and the next run needs a champion."""
    from pipelines.artifacts import load_json

    search = load_json(run.run_dir / "search.json")
    repo.promote(
        model_key,
        run.run_id,
        search["best_params"],
        actor="test",
        reason="seed a champion",
        model_version=1,
        metrics={},
        report_path=None,
    )
