"""Daily fine-tune vs full retrain: time, and what it costs out of sample.

For the S&P 500 and NASDAQ daily bars (1999-2018): a deployed model is trained on the history
up to a year before the end. Then, side by side and interleaved over repeats, the two ways to
bring it up to date on the same architecture:

* fine-tune (production's ``finetune_model``, daily defaults): the latest ``finetune_bars``,
  replayed older windows, lower learning rate, early stopping;
* full retrain (production's ``train_from_scratch``): a new network on the whole history.

Neither sees the last ``HOLDOUT`` bars, on which both are scored (MSE of the next-bar return).
Value: median over series and repeats of fine-tune wall time / retrain wall time; details:
``oos_loss_gap``, the worst relative out-of-sample loss difference (fine-tuned vs retrained).
"""

from __future__ import annotations

import copy
import statistics
import time

import numpy as np

from pipelines.config import HyperParams
from pipelines.config_files import default_config
from pipelines.data.sources import load_bars
from pipelines.features.core import windows_ending_in
from pipelines.training.lifecycle import finetune_model, train_from_scratch
from pipelines.training.trainer import predict
from pipelines.windowing import PreparedData

NAME = "finetune_time_ratio"
SERIES = ("sp500", "nasdaq")
REPEATS = 3
HOLDOUT = 250
DEPLOYED_LAG = 250  # the deployed model's data ends this many bars before the holdout

# The weekly default's training budget (10 epochs) on a mid-sized architecture; the fine-tune
# settings are the daily default config's (window, epochs, patience, learning-rate ratio, replay).
PARAMS = HyperParams(model_family="lstm", hidden_size=32, num_layers=2, seq_len=20, lr=1e-3, epochs=10)
CONFIG = default_config("daily")


def holdout_loss(trained, data: PreparedData, start: int) -> float:
    scaled = trained.scaler.transform(data.features)
    x, ends = windows_ending_in(scaled, PARAMS.seq_len, start, len(scaled))
    target = data.target.to_numpy()[ends]
    known = ~np.isnan(target)
    volatility = data.features["vol_20"].to_numpy()[ends][known]
    predicted = trained.scaler.expected_return(predict(trained.result.network, x[known]), volatility)
    return float(np.mean((predicted - target[known]) ** 2))


def one_series(name: str) -> dict:
    full = PreparedData.from_bars(load_bars(f"sample:{name}"), 10**9)
    n = len(full.bars)
    train_data = full.before(n - HOLDOUT)
    deployed = train_from_scratch(train_data.before(n - HOLDOUT - DEPLOYED_LAG), PARAMS, CONFIG, n)
    times: dict[str, list[float]] = {"finetune": [], "retrain": []}
    losses: dict[str, float] = {}
    for _ in range(REPEATS):
        for arm in ("finetune", "retrain"):  # interleaved: machine load hits both arms alike
            started = time.perf_counter()
            if arm == "finetune":
                network = copy.deepcopy(deployed.result.network)
                trained = finetune_model(network, deployed.scaler, train_data, PARAMS, CONFIG)
            else:
                trained = train_from_scratch(train_data, PARAMS, CONFIG, n)
            times[arm].append(time.perf_counter() - started)
            losses[arm] = holdout_loss(trained, full, n - HOLDOUT)  # seeded: every repeat is the same model
    losses["deployed"] = holdout_loss(deployed, full, n - HOLDOUT)
    ratios = [f / r for f, r in zip(times["finetune"], times["retrain"], strict=True)]
    return {
        "bars": n,
        "ratio": statistics.median(ratios),
        "finetune_s": round(statistics.median(times["finetune"]), 2),
        "retrain_s": round(statistics.median(times["retrain"]), 2),
        "holdout_mse": {k: float(f"{v:.4g}") for k, v in losses.items()},
        "oos_loss_gap": (losses["finetune"] - losses["retrain"]) / losses["retrain"],
    }


def run() -> dict:
    per_series = {name: one_series(name) for name in SERIES}
    return {
        "value": round(statistics.median(s["ratio"] for s in per_series.values()), 3),
        "unit": "fine-tune time / full retrain time",
        "goal": "<= 0.2, oos_loss_gap <= 0.02",
        "details": {
            "oos_loss_gap": round(max(s["oos_loss_gap"] for s in per_series.values()), 4),
            "series": {
                k: {**v, "ratio": round(v["ratio"], 3), "oos_loss_gap": round(v["oos_loss_gap"], 4)}
                for k, v in per_series.items()
            },
            "holdout_bars": HOLDOUT,
            "repeats": REPEATS,
            "architecture": PARAMS.model_dump(
                include={"model_family", "hidden_size", "num_layers", "seq_len"}
            ),
        },
    }
