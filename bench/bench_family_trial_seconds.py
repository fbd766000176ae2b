"""What one search trial costs per model family at the weekly default data size (a record, no goal).

Issue 15: every family goes through the same walk-forward objective (``make_objective``: every
fold, every strategy variant, the per-seed backtests) for one trial of the weekly default config
(3,000 S&P 500 bars, 4 folds of 252, ``seeds_per_trial`` 4, up to 30 epochs early-stopped on each
fold's inner validation, batch 64). Each family at a comparable mid-size point of its space
(width 32, 2 layers, 20 bars; MoE 4 experts top-1; Mamba bidirectional, patch 4 stride 2). One
cold call per family first (imports, vectorbt kernels), then ``REPEATS`` warm calls, families
interleaved so machine load hits them alike; medians.

``value``: the slowest family's warm median seconds; ``details.table``: every family's.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import optuna
import pandas as pd

from pipelines.config_files import default_config
from pipelines.data.sources import load_bars
from pipelines.search.objective import PreparedData, make_objective
from pipelines.search.strategy import StrategyGrid, split_space

NAME = "family_trial_seconds"
REPEATS = 1
COMMON = {"hidden_size": 32, "num_layers": 2, "seq_len": 20, "lr": 1e-3, "dropout": 0.1}
POINTS: dict[str, dict[str, Any]] = {
    "linear": {},
    "lstm": {},
    "transformer": {"nhead": 4},
    "moe_transformer": {"nhead": 4, "n_experts": 4, "top_k": 1},
    "mamba": {"bidirectional": True, "patch_len": 4, "stride_ratio": 0.5, "d_state": 8},
}


def trial_seconds(data: PreparedData, family: str) -> float:
    base = default_config("weekly")
    hyper = base.hyperparams.model_copy(update={"model_family": family, **POINTS[family]})
    config = base.model_copy(update={"hyperparams": hyper})
    space, _ = split_space(config.search_space)
    grid = StrategyGrid.from_space(config.search_space, config.hyperparams, config.strategy_grid_points)
    objective = make_objective(data, config, space, "sharpe", grid)
    point = {k: v for k, v in COMMON.items() if k in space}
    started = time.perf_counter()
    objective(optuna.trial.FixedTrial(point))
    return time.perf_counter() - started


def run() -> dict:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    weekly = default_config("weekly")
    bars = load_bars("sample:sp500", pd.Timestamp("2018-12-31"))
    history = bars.iloc[: -weekly.holdout_bars].reset_index(drop=True)
    data = PreparedData.from_bars(history, weekly.window_bars)
    cold = {family: round(trial_seconds(data, family), 2) for family in POINTS}
    warm: dict[str, list[float]] = {family: [] for family in POINTS}
    for _ in range(REPEATS):
        for family in POINTS:
            warm[family].append(trial_seconds(data, family))
    table = {family: round(statistics.median(times), 2) for family, times in warm.items()}
    return {
        "value": max(table.values()),
        "unit": "s per trial (slowest family)",
        "goal": "none: a record",
        "details": {
            "table": table,
            "cold_s": cold,
            "warm_s": {f: [round(t, 2) for t in ts] for f, ts in warm.items()},
            "point": {f: {**COMMON, **p} for f, p in POINTS.items()},
            "config": "weekly default: 3,000 bars, 4 folds x 252, seeds_per_trial 4, epochs 30 early-stopped",
        },
    }
