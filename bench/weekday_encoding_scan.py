"""Can a model single out one weekday? Trial scores with and without the weekday one-hot.

A diagnostic (not a ``results.json`` entry). The Friday effect (+0.6% on Fridays) was promoted
on 6 of 10 series: the oracle would have passed as each run's winner on 9, but the search's
best fell short of it. The weekday was then only an angle (``dow_sin``, ``dow_cos``), on which
neighbouring days look alike, so a linear model cannot pick out Thursday (the bar before a
Friday) from Wednesday and Friday. Here the linear baseline and a small LSTM point are scored as
a trial scores them (``early_stopping_scan.trial_score``, the chain's folds, costs and strategy
grid) with the features as they are (angle and one-hot ``dow_mon`` .. ``dow_sun``) and with the
one-hot columns held constant, which leaves them out of the model (``model_features``), beside
the oracle rule's walk-forward Sharpe on the same validation blocks. Prints one line per series:
each point's (angle only, with one-hot) scores and the oracle's.

Usage: ``.venv/bin/python bench/weekday_encoding_scan.py [LABEL ...]`` (default: the ten
Friday-effect series, ``day_of_week_100`` .. ``_109``; labels as in ``early_stopping_scan``).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from bench_planted_promotions import MATCHED_STRENGTHS, backtest_sharpe, planted
from early_stopping_scan import prepared, scan, trial_score

from pipelines.config import PipelineConfig
from pipelines.features.core import WEEKDAYS
from pipelines.windowing import Fold, PreparedData

POINTS: dict[str, dict[str, Any]] = {
    "linear": {"model_family": "linear"},
    "lstm_h8_seq20": {"hidden_size": 8, "num_layers": 1, "seq_len": 20, "dropout": 0.1, "lr": 5e-3},
}


def angle_only(data: PreparedData) -> PreparedData:
    """The same bars with the one-hot weekday columns constant (so no model uses them)."""
    features = data.features.copy()
    features[[f"dow_{day}" for day in WEEKDAYS]] = 0.0
    return PreparedData(bars=data.bars, features=features, target=data.target)


def oracle_sharpe(label: str, config: PipelineConfig, data: PreparedData, folds: list[Fold]) -> float:
    """The oracle rule traded on the folds' validation blocks, stitched, with the chain's costs."""
    structure, seed = label.rsplit("_", 1)
    series, oracle = planted(structure, int(seed), MATCHED_STRENGTHS[structure])
    offset = int(np.flatnonzero(series.bars["timestamp"].to_numpy() == data.bars["timestamp"].iloc[0])[0])
    rows = np.concatenate([np.arange(f.val_start, f.val_end) for f in folds])
    return round(
        backtest_sharpe(data.bars.iloc[rows], oracle[offset + rows], config.fees, config.slippage), 3
    )


def scores(label: str) -> dict[str, object]:
    config, data, folds, grid = prepared(label)
    blind = angle_only(data)
    out: dict[str, object] = {}
    for name, point in POINTS.items():
        params = config.hyperparams.model_copy(update=point)
        out[name] = (
            trial_score(blind, folds, params, config, grid),
            trial_score(data, folds, params, config, grid),
        )
    out["oracle"] = oracle_sharpe(label, config, data, folds)
    return out


if __name__ == "__main__":
    scan(scores, sys.argv[1:] or [f"day_of_week_{seed}" for seed in range(100, 110)])
