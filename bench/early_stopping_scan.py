"""Does early stopping on the fold's inner validation split cost the search its edge?

A diagnostic (not a ``results.json`` entry): on planted series, three fixed LSTM points of the
daily space (no selection, so no search luck) are scored as a trial scores them (the default
daily walk-forward, 8 seeds, every strategy variant: the best variant's mean over the folds)
under early stopping on the newest fifth of each fold's training part within 30 epochs (the
daily default until becd506; ``early_stopped``) and under a fixed epoch count with no inner
split, the whole training part fitted (the daily default since: 5 epochs). Prints one line per
series: each variant's three scores.

Usage: ``.venv/bin/python bench/early_stopping_scan.py LABEL ...`` with labels as the planted
promotions bench names its series (``ar1_0``, ``day_of_week_100``, ``vol_regime_101``,
``momentum_100``), at the strengths matched to phi = 0.25 there.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from bench_planted_promotions import MATCHED_STRENGTHS, holdout_start, planted

from pipelines.config import HyperParams, PipelineConfig
from pipelines.config_files import default_config
from pipelines.search.objective import evaluate_fold
from pipelines.search.strategy import StrategyGrid
from pipelines.windowing import Fold, PreparedData, config_folds

POINTS = (
    {"lr": 0.002, "hidden_size": 8, "num_layers": 1, "seq_len": 20, "dropout": 0.1},
    {"lr": 0.0005, "hidden_size": 16, "num_layers": 1, "seq_len": 10, "dropout": 0.1},
    {"lr": 0.005, "hidden_size": 16, "num_layers": 2, "seq_len": 30, "dropout": 0.2},
)
# label -> (config update, epochs)
VARIANTS: dict[str, tuple[dict[str, Any], int]] = {
    "early_stopped": ({"inner_val_fraction": 0.2}, 30),
    "fixed5": ({"inner_val_fraction": 0.0}, 5),
    "fixed10": ({"inner_val_fraction": 0.0}, 10),
    "fixed20": ({"inner_val_fraction": 0.0}, 20),
}


def prepared(
    label: str, schedule: str = "daily"
) -> tuple[PipelineConfig, PreparedData, list[Fold], StrategyGrid]:
    """A planted series as the chain's search sees it: the schedule's default config, the bars
    before the holdout, its walk-forward folds and strategy grid."""
    structure, seed = label.rsplit("_", 1)
    if structure not in MATCHED_STRENGTHS:
        raise SystemExit(f"unknown structure {structure!r}; known: {sorted(MATCHED_STRENGTHS)}")
    series, _ = planted(structure, int(seed), MATCHED_STRENGTHS[structure])
    base = default_config(schedule)
    searched = series.bars.iloc[: holdout_start(base.holdout_bars)].reset_index(drop=True)  # as the chain
    data = PreparedData.from_bars(searched, base.window_bars)
    grid = StrategyGrid.from_space(base.search_space, base.hyperparams, base.strategy_grid_points)
    return base, data, config_folds(len(data.bars), base), grid


def trial_score(
    data: PreparedData, folds: list[Fold], params: HyperParams, config: PipelineConfig, grid: StrategyGrid
) -> float:
    """What a trial at ``params`` scores: its best strategy variant's mean Sharpe over the folds."""
    values = np.array([evaluate_fold(data, f, params, config, "sharpe", grid).values for f in folds])
    return round(float(values.mean(axis=0).max()), 3)


def scores(label: str) -> dict[str, list[float]]:
    base, data, folds, grid = prepared(label)
    out: dict[str, list[float]] = {}
    for variant, (update, epochs) in VARIANTS.items():
        config = base.model_copy(update=update)
        points = [base.hyperparams.model_copy(update=point | {"epochs": epochs}) for point in POINTS]
        out[variant] = [trial_score(data, folds, params, config, grid) for params in points]
    return out


DEFAULT_LABELS = ("ar1_0", "day_of_week_100", "vol_regime_100", "momentum_100")


def scan(scores: Callable[[str], Any], labels: Sequence[str]) -> None:
    """Print ``scores(label)`` as a JSON line per label (``DEFAULT_LABELS`` if none), torch on
    one thread as in the chain's search workers."""
    torch.set_num_threads(1)
    for label in labels or DEFAULT_LABELS:
        print(label, json.dumps(scores(label)), flush=True)


if __name__ == "__main__":
    scan(scores, sys.argv[1:])
