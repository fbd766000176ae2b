"""Does re-running a search on unchanged data raise its winner's Deflated Sharpe Ratio?

Issue 13: with N counted over every backtest ever run but the variance of trial Sharpes taken
from this run only, three reruns took an unchanged winner's DSR from 0.675 to 0.969 and the gate
promoted it. Here each series is run ``RETUNE_BENCH_RERUNS`` (10) times in one home on the very
same bars and as-of — the S&P 500 sample up to 2018-12-31 and two 3,000-bar random walks (one
with drift) — through ``retune run`` with the default daily config and ``promotion_policy: auto``.
``value``: the largest rise of an *unchanged* winner's DSR between consecutive reruns (pairs
whose best value is the same: the same winner re-scored), over all series, floored at 0 (goal:
none at all). The issue's wording, the largest rise of whatever trial won each rerun, is kept in
``details.max_rise_any_winner``: a rerun that finds a different, better-scoring trial may show a
higher DSR for it (its N and bar are higher too), so that number measures how adaptive search
on the same bars keeps finding luckier trials, not the bookkeeping the issue found broken;
``details.max_dsr`` says how close any rerun of a null series came to the gate.
"""

from __future__ import annotations

import time

from chain import SeriesSpec, cleanup, config_overrides, env_int, run_all, series_summary

from pipelines.data.synthetic import random_walk

NAME = "rerun_dsr_ratchet"
BARS = 3000
RISE_TOLERANCE = 1e-9  # float noise in the statistics is not a rise


def specs(reruns: int, n_series: int) -> list[SeriesSpec]:
    walks = [("random_walk", 0.0, 11), ("random_walk_drift", 0.0004, 12)]
    out = [
        SeriesSpec(
            "sp500",
            "bench_ratchet_sp500",
            reruns,
            data="sample:sp500",
            as_of="2018-12-31",
            truth={"data": "sample:sp500", "as_of": "2018-12-31"},
        )
    ]
    for label, drift, seed in walks:
        walk = random_walk(BARS, seed, drift=drift)
        out.append(SeriesSpec(label, f"bench_ratchet_{label}", reruns, bars=walk.bars, truth=walk.truth))
    return out[:n_series]


def rises(dsr: list, best: list) -> tuple[float, float]:
    """(largest DSR rise between consecutive reruns, the same over pairs with an unchanged best)."""
    pairs = [(a, b, ba == bb) for a, b, ba, bb in zip(dsr, dsr[1:], best, best[1:], strict=False)]
    every = [b - a for a, b, _ in pairs if a is not None and b is not None]
    same = [b - a for a, b, same in pairs if same and a is not None and b is not None]
    return max(every, default=0.0), max(same, default=0.0)


def run() -> dict:
    started = time.perf_counter()
    reruns = env_int("RETUNE_BENCH_RERUNS", 10)
    series = specs(reruns, env_int("RETUNE_BENCH_SERIES", 3))
    results, root = run_all(series, NAME)
    try:
        details: dict = {}
        worst, worst_any, highest = 0.0, 0.0, 0.0
        for result in results:
            summary = series_summary(result)
            rise, rise_same = rises(
                [r.get("dsr") for r in result.runs], [r.get("best_value") for r in result.runs]
            )
            summary["max_dsr_rise"] = round(rise, 6)
            summary["max_rise_same_winner"] = round(rise_same, 6)
            summary["ever_promoted"] = result.ever_promoted
            details[result.label] = summary
            worst = max(worst, rise_same if rise_same > RISE_TOLERANCE else 0.0)
            worst_any = max(worst_any, rise)
            highest = max([highest, *(d for d in summary.get("dsr", []) if d is not None)])
    finally:
        cleanup(root)
    return {
        "value": round(worst, 6),
        "unit": f"largest rise of an unchanged winner's DSR over {reruns} reruns of unchanged data",
        "goal": "= 0",
        "details": {
            "max_rise_any_winner": round(worst_any, 6),
            "max_dsr": round(highest, 4),
            "series": details,
            "reruns": reruns,
            "n_trials": series[0].n_trials,
            "config": "pipelines/defaults/daily.yaml + promotion_policy: auto (one home per series)",
            "config_overrides": config_overrides(),
            "wall_s": round(time.perf_counter() - started, 1),
        },
    }
