"""One Optuna study per run, on the RDB store, resumable by run id, shared by worker processes.

The search is split by job: ``storage`` (riding out database outages), ``heartbeats`` (the RDB
storage with heartbeats and the stale-trial override), ``samplers`` (sampler and pruner by name),
``seeding`` (prepare once: carry-over, production's params, the baseline) and ``worker`` (the
budgeted worker loop). This module names the study and says which of its trials are its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from pipelines.terms import TrialAttr


@dataclass(frozen=True)
class SearchSettings:
    n_trials: int
    timeout_minutes: float
    objective: str = "sharpe"
    mode: str = "bayesian"


def study_name(run_id: str) -> str:
    return f"retune-{run_id}"


def fresh_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials this study ran itself (not carried over from an earlier run), read-only.

    Not deep-copied: every worker counts the study before each trial, and copying every trial
    each time was most of what a trial cost the storage (bench ``storage_trials_per_second``)."""
    return [t for t in study.get_trials(deepcopy=False) if TrialAttr.CARRIED_OVER_FROM not in t.user_attrs]


def fresh_complete_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The complete trials scored on this run's data (one read of the storage)."""
    return [t for t in fresh_trials(study) if t.state == optuna.trial.TrialState.COMPLETE]


def best_of(complete: list[optuna.trial.FrozenTrial]) -> optuna.trial.FrozenTrial | None:
    """The highest-scoring of these complete trials (every objective is maximized)."""
    return max(complete, key=lambda t: t.value, default=None)  # type: ignore[arg-type,return-value]


def best_fresh_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best complete trial scored on this run's data; carried-over trials only guide sampling."""
    return best_of(fresh_complete_trials(study))
