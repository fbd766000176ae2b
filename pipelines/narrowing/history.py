"""Evidence from past studies of the same model key, read from the Optuna RDB store."""

from __future__ import annotations

from typing import Any

import optuna

from pipelines.store.repository import Repository
from pipelines.terms import TrialAttr


def prior_trials(
    repo: Repository, optuna_url: str, model_key: str, run_id: str, quantile: float = 0.25
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Params of the top-quantile complete trials of earlier runs, and the latest run's best."""
    top: list[dict[str, Any]] = []
    latest_best: dict[str, Any] | None = None
    storage = optuna.storages.RDBStorage(optuna_url)
    for name in repo.previous_studies(model_key, before_run=run_id):
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:  # the study was deleted; nothing to learn from it
            continue
        best = top_quantile(study, quantile)
        if not best:
            continue
        top.extend(best)
        if latest_best is None:
            latest_best = dict(best[0])
    storage.engine.dispose()
    return top, latest_best


def top_quantile(study: optuna.Study, quantile: float = 0.25) -> list[dict[str, Any]]:
    """Params of a study's top-quantile complete trials, best first (at least one if any completed).

    Only complete trials it ran itself count: a pruned trial's value is a partial mean over fewer
    folds, and a carried-over trial was scored on older data. A trial's chosen strategy variant
    belongs to its params: it was scored, not searched.
    """
    done = [
        t
        for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE
        and TrialAttr.CARRIED_OVER_FROM not in t.user_attrs
        and TrialAttr.TRAIN_FAMILY not in t.user_attrs  # another family's score says nothing of these ranges
    ]
    done.sort(key=lambda t: t.value if t.value is not None else float("-inf"), reverse=True)
    keep = max(int(len(done) * quantile), 1) if done else 0
    return [{**t.params, **(t.user_attrs.get(TrialAttr.STRATEGY) or {})} for t in done[:keep]]
