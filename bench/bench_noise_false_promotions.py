"""How often a search on pure noise would be promoted: the DSR gate vs a naive best-Sharpe pick.

Ten i.i.d. random-walk series (no strategy has an edge). Each gets a real search; the winner
is "promoted" by the DSR gate when DSR >= the configured threshold (N = every backtest the
search tried), and by the naive rule when its walk-forward Sharpe is positive. Repeated for
several seeds (different series and samplers); the value is the median count over seeds.
"""

from __future__ import annotations

import time

from search_fixtures import median, over_seeds, random_walk, small_config, sqlite_url

from pipelines.search.objective import PreparedData
from pipelines.search.selection import selection_statistics
from pipelines.search.study import SearchSettings, best_fresh_trial, run_study

NAME = "noise_false_promotions"
SEEDS = (0, 1, 2, 3, 4)
SERIES = 10
TRIALS = 12
BARS = 1000


def one_series(seed: int, series: int) -> dict:
    config = small_config(seed=seed)
    data = PreparedData.from_bars(random_walk(BARS, seed=1000 * seed + series), config.window_bars)
    run_id = f"noise-{seed}-{series}"
    study = run_study(
        run_id, data, config, config.search_space, SearchSettings(TRIALS, 30), sqlite_url(run_id)
    )
    best = best_fresh_trial(study)
    assert best is not None
    stats = selection_statistics(study, best, prior_backtests=0, pbo_splits=config.pbo_splits)
    dsr = stats["dsr"]["dsr"] if stats["dsr"] else 0.0
    return {
        "best_sharpe": round(float(best.value), 3),  # type: ignore[arg-type]
        "dsr": round(dsr, 4),
        "pbo": None if stats["pbo"] is None else round(stats["pbo"]["pbo"], 3),
        "dsr_gate": dsr >= config.dsr_threshold,
        "naive_gate": float(best.value) > 0,  # type: ignore[arg-type]
    }


def one_seed(seed: int) -> dict:
    rows = [one_series(seed, s) for s in range(SERIES)]
    return {
        "dsr_promotions": sum(r["dsr_gate"] for r in rows),
        "naive_promotions": sum(r["naive_gate"] for r in rows),
        "series": rows,
    }


def run() -> dict:
    started = time.perf_counter()
    per_seed = over_seeds(one_seed, SEEDS, "dsr_promotions", "naive_promotions")
    return {
        "value": median([s["dsr_promotions"] for s in per_seed.values()]),
        "unit": f"false promotions out of {SERIES} random walks (median of {len(SEEDS)} seeds)",
        "goal": "<= 1",
        "details": {
            "naive_best_sharpe_promotions_median": median([s["naive_promotions"] for s in per_seed.values()]),
            "dsr_threshold": small_config().dsr_threshold,
            "trials_per_search": TRIALS,
            "strategy_variants_per_trial": 8,  # 4 thresholds x long-only/long-short
            "bars_per_series": BARS,
            "per_seed": per_seed,
            "wall_s": round(time.perf_counter() - started, 1),
        },
    }
