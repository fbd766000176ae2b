"""Latency of one live update: the newest bar's features plus the forward pass.

A ``LivePredictor`` warmed up on the S&P 500 history takes the next bars one at a time, as a
trading system would; every ``update`` is timed (single torch thread, the production setting).
Each family is measured as one network of the fixtures' production size (width 64) and as the
seed ensembles the default configs deploy: the daily config's ``seeds_per_trial`` members at the
daily search's widest ``hidden_size``, and the weekly config's at width 64. Value: the worst p99
over families and those deployments. Details: medians and p99 of each, plus the daily member
count at width 64 — a combination no default config deploys — for the record.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from live_fixtures import FAMILIES, predictor_for, sp500_bars

from pipelines.config_files import default_config

NAME = "live_inference_p99_ms"
UPDATES = 2000
WIDTH = 64  # the fixtures' production width


def deployments() -> dict[str, tuple[int, int]]:
    """Name -> (members, hidden_size) of what is measured; ``record`` ones do not set the value."""
    daily, weekly = default_config("daily"), default_config("weekly")
    daily_width = max(daily.search_space["hidden_size"].choices)  # type: ignore[union-attr]
    return {
        "single": (1, WIDTH),
        "daily": (daily.seeds_per_trial, daily_width),
        "weekly": (weekly.seeds_per_trial, WIDTH),
        "record": (daily.seeds_per_trial, WIDTH),
    }


def p99_of_updates(family: str, bars, members: int, hidden_size: int) -> dict[str, float]:
    records = bars.to_dict("records")
    first = len(records) - UPDATES
    predictor = predictor_for(family, bars, members, hidden_size)
    predictor.predict_bars(bars.iloc[:first])  # warm-up window, as after a restart
    timings = []
    for bar in records[first:]:
        started = time.perf_counter()
        signal = predictor.update(bar)
        timings.append(time.perf_counter() - started)
        assert signal is not None
    ms = np.asarray(timings) * 1e3
    return {
        "members": members,
        "hidden_size": hidden_size,
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3),
    }


def run() -> dict:
    torch.set_num_threads(1)
    bars = sp500_bars()
    measured_at = deployments()
    per_family = {
        family: {name: p99_of_updates(family, bars, k, width) for name, (k, width) in measured_at.items()}
        for family in FAMILIES
    }
    measured = [d["p99_ms"] for f in per_family.values() for n, d in f.items() if n != "record"]
    return {
        "value": max(measured),
        "unit": "ms (p99 of one bar: features + forward pass; worst family and default deployment)",
        "goal": "<= 5",
        "details": {
            "families": per_family,
            "deployments": "single: one network; daily/weekly: the default config's seed ensemble "
            "(seeds_per_trial members) at its search's width; record: daily members at width 64",
            "updates": UPDATES,
            "torch_threads": 1,
        },
    }
