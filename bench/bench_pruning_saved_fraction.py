"""What pruning saves: folds trained with each pruner vs without, on the same candidates.

Every arm draws the same candidates (a seeded random sampler does not depend on earlier
results), so the only difference is which candidates a pruner stops: the median pruner one
whose running mean over folds falls below the median of earlier trials at the same fold; the
Wilcoxon pruner (``PairedBlocksPruner``) one whose time blocks are significantly worse than
this run's best trial's on the same blocks. Value: the median over seeds of the fraction of
fold trainings the configured default pruner saves; details: each arm's fraction and the gap
between the best walk-forward Sharpe found without and with pruning (a wrongly pruned winner
shows up here).
"""

from __future__ import annotations

import time

import optuna
from search_fixtures import median, over_seeds, random_walk, regime_drift, small_config, sqlite_url

from pipelines.config import PipelineConfig
from pipelines.search.study import SearchSettings, best_fresh_trial
from pipelines.search.worker import run_study
from pipelines.windowing import PreparedData

NAME = "pruning_saved_fraction"
SEEDS = (0, 1, 2, 3, 4)
TRIALS = 60
FOLDS = 5


PRUNERS = ("median", "wilcoxon")
DEFAULT = PipelineConfig.model_fields["pruner"].default


def folds_trained(study: optuna.Study) -> int:
    return sum(len(t.user_attrs.get("fold_metrics", [])) for t in study.trials)


def one_seed(seed: int) -> dict:
    # half the seeds carry a planted edge, half are pure noise: pruning must not cost the winner in either
    bars = regime_drift(1200, seed)[0] if seed % 2 == 0 else random_walk(1200, seed)
    arms = {}
    for pruner in ("none", *PRUNERS):
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
    saved = {p: round(1 - arms[p]["folds_trained"] / arms["none"]["folds_trained"], 3) for p in PRUNERS}
    gap = {p: round(arms["none"]["best_value"] - arms[p]["best_value"], 4) for p in PRUNERS}
    return {
        "saved_fraction": saved[DEFAULT],
        "best_sharpe_gap": gap[DEFAULT],
        "by_pruner": {p: {"saved_fraction": saved[p], "best_sharpe_gap": gap[p]} for p in PRUNERS},
        "arms": arms,
    }


def run() -> dict:
    started = time.perf_counter()
    rows = over_seeds(one_seed, SEEDS, "saved_fraction", "best_sharpe_gap")
    by_pruner = {
        p: {
            "saved_fraction": median([r["by_pruner"][p]["saved_fraction"] for r in rows.values()]),
            "best_sharpe_gap": median([r["by_pruner"][p]["best_sharpe_gap"] for r in rows.values()]),
        }
        for p in PRUNERS
    }
    return {
        "value": by_pruner[DEFAULT]["saved_fraction"],
        "unit": f"fraction of fold trainings saved by the default ({DEFAULT}) pruner "
        f"(median of {len(SEEDS)} seeds)",
        "goal": ">= 0.5",
        "details": {
            "best_sharpe_gap": by_pruner[DEFAULT]["best_sharpe_gap"],
            "best_sharpe_gap_goal": "<= 0.05",
            "by_pruner": by_pruner,
            "trials_per_arm": TRIALS,
            "folds": FOLDS,
            "sampler": "random (same seed in every arm: identical candidates)",
            "per_seed": rows,
            "wall_s": round(time.perf_counter() - started, 1),
        },
    }
