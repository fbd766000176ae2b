"""Would a volatility-scaled target help the models find a volatility regime?

A diagnostic (not a ``results.json`` entry). The target is the next bar's return, scaled by one
standard deviation over the training window; on a series whose storm bars are three times as
volatile as its calm ones, the squared loss is mostly the storm bars' noise, and the calm bars'
drift barely counts. Here the same fixed LSTM points are scored as a trial scores them
(``early_stopping_scan.trial_score``) with the chain's target and with the target divided by
each bar's trailing 20-bar volatility (the ``vol_20`` feature, known at the bar): the positions
still come from the prediction's sign and thresholds, the backtest is unchanged. The scaled
target is now the config option ``target: volatility_scaled``, which this scan uses. Prints one
line per series: each point's (chain target, scaled target) scores.

Usage: ``.venv/bin/python bench/vol_scaled_target_scan.py LABEL ...`` (labels as in
``early_stopping_scan``).
"""

from __future__ import annotations

import sys

from early_stopping_scan import prepared, scan, trial_score

POINTS = {
    "h8_seq20": {"hidden_size": 8, "num_layers": 1, "seq_len": 20, "dropout": 0.1},
    "h16x2_seq10": {"hidden_size": 16, "num_layers": 2, "seq_len": 10, "dropout": 0.1},
}
LEARNING_RATES = (1e-3, 5e-3)


def scores(label: str) -> dict[str, tuple[float, float]]:
    config, data, folds, grid = prepared(label)
    scaled = config.model_copy(update={"target": "volatility_scaled"})  # the config option it became
    out = {}
    for name, point in POINTS.items():
        for lr in LEARNING_RATES:
            params = config.hyperparams.model_copy(update=point | {"lr": lr})
            out[f"{name}_lr{lr}"] = (
                trial_score(data, folds, params, config, grid),
                trial_score(data, folds, params, scaled, grid),
            )
    return out


if __name__ == "__main__":
    scan(scores, sys.argv[1:] or ["vol_regime_100", "vol_regime_101", "vol_regime_103", "ar1_0"])
