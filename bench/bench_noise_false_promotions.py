"""How often does a daily schedule on pure noise promote? Through the real chain.

Issue 13: a pipeline that runs every day must not, by repetition, promote a random walk. Each of
``RETUNE_BENCH_SERIES`` (10) random walks — 3,000 daily bars at the first run, half of them with
drift (buy-and-hold earns, no rule adds anything) — lives in its own ``RETUNE_HOME`` and is run
``RETUNE_BENCH_RERUNS`` (10) times by ``retune run`` (default daily config, ``promotion_policy:
auto``), with one bar appended to its CSV and the as-of moved to it before each rerun, as a daily
DAG sees a growing history. ``value``: how many series were ever promoted (goal <= 1).
``details``: per series the decisions, DSR, N; what a naive best-Sharpe gate (best value > 0)
would have promoted; how many runs the benchmark checks (``beats_benchmark``,
``beats_benchmark_holdout``) refused.

Before 2026-12-02 this benchmark scored the DSR statistic alone on in-process searches (median of
5 x 10 series of 1,000 bars); it did not see narrowing, carried-over trials or the stored
history, which is where the rerun ratchet lives.
"""

from __future__ import annotations

import time

from chain import (
    SeriesSpec,
    cleanup,
    config_overrides,
    env_int,
    refused_by_benchmark,
    run_all,
    series_summary,
)

from pipelines.data.synthetic import random_walk

NAME = "noise_false_promotions"
BARS = 3000
DRIFT = 0.0004  # ~10% a year at 1% daily volatility: buy-and-hold Sharpe ~0.6, no skill


def specs(n_series: int, reruns: int) -> list[SeriesSpec]:
    out = []
    for seed in range(n_series):
        drift = DRIFT if seed % 2 else 0.0
        walk = random_walk(BARS + reruns - 1, seed, drift=drift)
        label = f"walk{seed}{'_drift' if drift else ''}"
        out.append(
            SeriesSpec(
                label,
                f"bench_noise_{seed}",
                reruns,
                bars=walk.bars,
                first_bars=BARS,
                append=True,
                truth=walk.truth,
            )
        )
    return out


def run() -> dict:
    started = time.perf_counter()
    n_series, reruns = env_int("RETUNE_BENCH_SERIES", 10), env_int("RETUNE_BENCH_RERUNS", 10)
    series = specs(n_series, reruns)
    results, root = run_all(series, NAME)
    try:
        per_series: dict = {}
        for result in results:
            summary = series_summary(result)
            summary["ever_promoted"] = result.ever_promoted
            summary["naive_would_promote"] = [
                r.get("best_value") is not None and r["best_value"] > 0 for r in result.runs
            ]
            summary["refused_by_benchmark"] = sum(refused_by_benchmark(r) for r in result.runs)
            # runs the benchmark checks alone refused: every other check passed
            summary["refused_by_benchmark_only"] = sum(
                refused_by_benchmark(r) and all(c.startswith("beats_benchmark") for c in r["failed_checks"])
                for r in result.runs
            )
            summary["benchmark_checks"] = [r.get("benchmark_checks") for r in result.runs]
            per_series[result.label] = summary
    finally:
        cleanup(root)
    promoted = [label for label, s in per_series.items() if s["ever_promoted"]]
    naive = [label for label, s in per_series.items() if any(s["naive_would_promote"])]
    return {
        "value": len(promoted),
        "unit": f"random walks ever promoted (of {n_series}, {reruns} daily reruns each)",
        "goal": "<= 1",
        "details": {
            "promoted_series": promoted,
            "promoted_runs": sum(sum(r.get("promoted", False) for r in res.runs) for res in results),
            "naive_best_sharpe_gate_series": len(naive),
            "naive_best_sharpe_gate_runs": sum(sum(s["naive_would_promote"]) for s in per_series.values()),
            "refused_by_benchmark_runs": sum(s["refused_by_benchmark"] for s in per_series.values()),
            "refused_by_benchmark_only_runs": sum(
                s["refused_by_benchmark_only"] for s in per_series.values()
            ),
            "runs": n_series * reruns,
            "bars_first_run": BARS,
            "drift_of_odd_seeds": DRIFT,
            "n_trials": series[0].n_trials if series else None,
            "config": "pipelines/defaults/daily.yaml + promotion_policy: auto (one home per series)",
            "config_overrides": config_overrides(),
            "series": per_series,
            "wall_s": round(time.perf_counter() - started, 1),
        },
    }
