"""Latency of one live update: the newest bar's features plus the forward pass.

A ``LivePredictor`` warmed up on the S&P 500 history takes the next bars one at a time, as a
trading system would; every ``update`` is timed (single torch thread, the production setting).
Each family is measured as one network and as the seed ensemble the daily default deploys
(``seeds_per_trial`` members, their mean). Value: the worst p99 over families and both sizes;
details: medians and p99 per family and size.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from live_fixtures import FAMILIES, predictor_for, sp500_bars

from pipelines.config_files import default_config

NAME = "live_inference_p99_ms"
UPDATES = 2000


def run() -> dict:
    torch.set_num_threads(1)
    bars = sp500_bars()
    records = bars.to_dict("records")
    first = len(records) - UPDATES
    per_family = {}
    ensemble = default_config("daily").seeds_per_trial
    for family, members in [(f, k) for f in FAMILIES for k in sorted({1, ensemble})]:
        predictor = predictor_for(family, bars, members)
        predictor.predict_bars(bars.iloc[:first])  # warm-up window, as after a restart
        timings = []
        for bar in records[first:]:
            started = time.perf_counter()
            signal = predictor.update(bar)
            timings.append(time.perf_counter() - started)
            assert signal is not None
        ms = np.asarray(timings) * 1e3
        per_family[family if members == 1 else f"{family}_{members}_seeds"] = {
            "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "max_ms": round(float(ms.max()), 3),
        }
    return {
        "value": max(f["p99_ms"] for f in per_family.values()),
        "unit": "ms (p99 of one bar: features + forward pass)",
        "goal": "<= 5",
        "details": {"families": per_family, "updates": UPDATES, "torch_threads": 1},
    }
