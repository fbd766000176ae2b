"""What pruning saves: folds trained with the median pruner vs without, on the same candidates.

Both arms draw the same candidates (a seeded random sampler does not depend on earlier
results), so the only difference is that the pruned arm stops a candidate whose running mean
over folds falls below the median of earlier trials at the same fold. Value: the median over
seeds of the fraction of fold trainings saved; details: the gap between the best walk-forward
Sharpe found without and with pruning (a wrongly pruned winner shows up here).
"""

from __future__ import annotations

import time

import optuna
from search_fixtures import median, over_seeds, random_walk, regime_drift, small_config, sqlite_url

from pipelines.search.study import SearchSettings, best_fresh_trial
from pipelines.search.worker import run_study
from pipelines.windowing import PreparedData

NAME = "pruning_saved_fraction"
SEEDS = (0, 1, 2, 3, 4)
TRIALS = 60
FOLDS = 5


def folds_trained(study: optuna.Study) -> int:
    return sum(len(t.intermediate_values) for t in study.trials)


def one_seed(seed: int) -> dict:
    # half the seeds carry a planted edge, half are pure noise: pruning must not cost the winner in either
    bars = regime_drift(1200, seed)[0] if seed % 2 == 0 else random_walk(1200, seed)
    arms = {}
    for pruner in ("none", "median"):
        config = small_config(seed=seed, pruner=pruner, n_folds=FOLDS, val_bars=60)
        data = PreparedData.from_bars(bars, config.window_bars)
        run_id = f"prune-{pruner}-{seed}"
        started = time.perf_counter()
        study = run_study(
            run_id,
            data,
            config,
            config.search_space,
            SearchSettings(TRIALS, 30, mode="random"),
            sqlite_url(run_id),
        )
        best = best_fresh_trial(study)
        assert best is not None
        arms[pruner] = {
            "folds_trained": folds_trained(study),
            "best_value": float(best.value),  # type: ignore[arg-type]
            "best_trial": best.number,
            "pruned_trials": sum(1 for t in study.trials if t.state == optuna.trial.TrialState.PRUNED),
            "wall_s": round(time.perf_counter() - started, 1),
        }
    saved = 1 - arms["median"]["folds_trained"] / arms["none"]["folds_trained"]
    return {
        "saved_fraction": round(saved, 3),
        "best_sharpe_gap": round(arms["none"]["best_value"] - arms["median"]["best_value"], 4),
        "arms": arms,
    }


def run() -> dict:
    started = time.perf_counter()
    rows = over_seeds(one_seed, SEEDS, "saved_fraction", "best_sharpe_gap")
    return {
        "value": median([r["saved_fraction"] for r in rows.values()]),
        "unit": f"fraction of fold trainings saved by the median pruner (median of {len(SEEDS)} seeds)",
        "goal": ">= 0.5",
        "details": {
            "best_sharpe_gap": median([r["best_sharpe_gap"] for r in rows.values()]),
            "best_sharpe_gap_goal": "<= 0.05",
            "trials_per_arm": TRIALS,
            "folds": FOLDS,
            "sampler": "random (same seed in both arms: identical candidates)",
            "per_seed": rows,
            "wall_s": round(time.perf_counter() - started, 1),
        },
    }
