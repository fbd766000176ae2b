"""Does the daily search space's learning-rate range fit the daily training budget?

A diagnostic (not a ``results.json`` entry): since becd506 a daily trial trains a fixed 5 epochs
on its fold's training bars, a few dozen optimizer steps at batch 64, where the range
``lr: 1e-4 .. 1e-2`` was chosen for up to 30 epochs. On planted series, two fixed LSTM points
of the daily space are scored as a trial scores them (``early_stopping_scan.trial_score``: 8
seeds, every strategy variant, the best variant's mean Sharpe over the default daily
walk-forward) at each learning rate of ``LEARNING_RATES``. Prints one line per series: each
point's scores in the order of ``LEARNING_RATES``.

Usage: ``.venv/bin/python bench/learning_rate_scan.py [--weekly] LABEL ...`` (labels as in
``early_stopping_scan``); ``--weekly`` scores two points of the weekly space under the weekly
config (early-stopped within 30 epochs, 4 seeds, 4 folds) at ``LEARNING_RATES["weekly"]``.
"""

from __future__ import annotations

import functools
import sys

from early_stopping_scan import prepared, scan, trial_score

LEARNING_RATES = {"daily": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2), "weekly": (1e-5, 1e-4, 1e-3, 3e-3, 1e-2)}
POINTS = {
    "daily": {
        "h8_seq20": {"hidden_size": 8, "num_layers": 1, "seq_len": 20, "dropout": 0.1},
        "h16x2_seq10": {"hidden_size": 16, "num_layers": 2, "seq_len": 10, "dropout": 0.1},
    },
    "weekly": {
        "h32_seq20": {"hidden_size": 32, "num_layers": 1, "seq_len": 20, "dropout": 0.2},
        "h64x2_seq30": {"hidden_size": 64, "num_layers": 2, "seq_len": 30, "dropout": 0.2},
    },
}


def scores(label: str, schedule: str = "daily") -> dict[str, list[float]]:
    config, data, folds, grid = prepared(label, schedule)
    return {
        name: [
            trial_score(data, folds, config.hyperparams.model_copy(update=point | {"lr": lr}), config, grid)
            for lr in LEARNING_RATES[schedule]
        ]
        for name, point in POINTS[schedule].items()
    }


if __name__ == "__main__":
    weekly = sys.argv[1:2] == ["--weekly"]
    schedule = "weekly" if weekly else "daily"
    print(f"{schedule} config, learning rates:", LEARNING_RATES[schedule], flush=True)
    scan(functools.partial(scores, schedule=schedule), sys.argv[1 + weekly :])
