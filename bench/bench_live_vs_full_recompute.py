"""Incremental newest-bar inference vs recomputing over the full history.

For each of the last ``BARS`` S&P 500 bars, interleaved, three ways to get its signal:

* incremental: ``LivePredictor.update`` (trailing feature window + one forward pass);
* full recompute (the value's baseline): the training path from scratch on the whole history
  up to that bar — batch features, scaling, every window through the network — and take the
  last prediction, which is what a system without incremental state has to do;
* features-only recompute (details): batch features over the whole history, then one forward
  pass on the newest window — the cheapest non-incremental way, reported for honesty.

Value: median over bars of full-recompute time / incremental time (LSTM, production size).
"""

from __future__ import annotations

import statistics
import time

import torch
from live_fixtures import predictor_for, sp500_bars

from pipelines.evaluation.parity import batch_predictions
from pipelines.features.core import compute_features
from pipelines.training.trainer import predict

NAME = "live_vs_full_recompute"
BARS = 30


def run() -> dict:
    torch.set_num_threads(1)
    bars = sp500_bars()
    predictor = predictor_for("lstm", bars)
    first = len(bars) - BARS
    predictor.predict_bars(bars.iloc[:first])
    seq_len = predictor.params.seq_len
    times: dict[str, list[float]] = {"incremental": [], "full": [], "features_only": []}
    for i, bar in enumerate(bars.iloc[first:].to_dict("records"), start=first):
        history = bars.iloc[: i + 1]

        started = time.perf_counter()
        live = predictor.update(bar)
        times["incremental"].append(time.perf_counter() - started)

        started = time.perf_counter()
        features = compute_features(history)
        full = batch_predictions(predictor, features, 0).iloc[-1]
        times["full"].append(time.perf_counter() - started)

        started = time.perf_counter()
        scaled = predictor.scaler.transform(compute_features(history))[-seq_len:]
        newest = float(predict(predictor.network, scaled[None])[0])
        times["features_only"].append(time.perf_counter() - started)

        assert live is not None and abs(live["prediction"] - full) <= 1e-9 and abs(newest - full) <= 1e-9
    medians = {arm: statistics.median(t) for arm, t in times.items()}
    ratios = [f / inc for f, inc in zip(times["full"], times["incremental"], strict=True)]
    return {
        "value": round(statistics.median(ratios), 1),
        "unit": "x faster (full-history recompute time / incremental update time)",
        "goal": ">= 50",
        "details": {
            "median_ms": {arm: round(m * 1e3, 3) for arm, m in medians.items()},
            "features_only_ratio": round(
                statistics.median(
                    f / inc for f, inc in zip(times["features_only"], times["incremental"], strict=True)
                ),
                1,
            ),
            "history_bars": len(bars),
            "bars_timed": BARS,
            "signals_equal_within": 1e-9,
        },
    }
