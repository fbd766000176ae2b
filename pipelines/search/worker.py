"""The worker loop: run trials on a prepared study until it holds the run's budget.

Budget: ``n_trials`` counts the run's own COMPLETE and PRUNED trials, across all workers and
Airflow retries. A worker starts a trial only while finished + running trials are below the
budget, and it counts and asks for the trial under one PostgreSQL advisory lock, so two
workers never both take the last slot (optuna's ``MaxTrialsCallback`` stops a worker only
*after* a trial finishes: with N workers a study ends with up to N-1 extra trials). A worker
that was killed leaves its trial RUNNING; once its heartbeat is stale another worker (or the
retried one) fails it and ``RetryHeartbeatStaleTrialCallback`` queues the same parameters
again, so the killed trial is retried, not lost, and never counted twice.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from pipelines.config import ConfigError, PipelineConfig
from pipelines.param_specs import Categorical, FloatRange, IntRange, ParamSpec
from pipelines.search.heartbeats import make_storage
from pipelines.search.objective import folds_value, make_objective
from pipelines.search.samplers import make_pruner, make_sampler
from pipelines.search.seeding import PREPARED, prepare_study
from pipelines.search.space import grid, grid_size
from pipelines.search.storage import (
    STORAGE_PATIENCE_SECONDS,
    env_seconds,
    is_sqlite,
    retrying,
    short_error,
    storage_failure,
)
from pipelines.search.strategy import StrategyGrid, split_space
from pipelines.search.study import SearchSettings, best_fresh_trial, fresh_trials, study_name
from pipelines.search.study_lock import StudyLock
from pipelines.terms import TrialAttr
from pipelines.windowing import PreparedData

log = logging.getLogger(__name__)

# Builds a stage's Optuna objective (data, config, stage space, objective name, strategy grid).
# Production always uses the walk-forward ``make_objective``; the seam lets tests of the study's
# bookkeeping (budget, resume, carry-over, stages) score trials without training a model.
ObjectiveFactory = Callable[
    [PreparedData, PipelineConfig, dict[str, ParamSpec], str, StrategyGrid],
    Callable[[optuna.Trial], float],
]


def run_study(
    run_id: str,
    data: PreparedData,
    config: PipelineConfig,
    space: dict[str, ParamSpec],
    settings: SearchSettings,
    storage_url: str,
    incumbent: dict[str, Any] | None = None,
    previous_study: str | None = None,
    objective_factory: ObjectiveFactory = make_objective,
) -> optuna.Study:
    """Create or resume the run's study and run trials in this process until the budget is spent.

    Resuming counts finished trials against ``n_trials`` so an Airflow retry does not run the
    whole budget again. Strategy parameters are not searched: every trial scores the whole
    strategy grid on its predictions. Production's model parameters are trial 0.
    """
    prepare_study(run_id, config, space, settings, storage_url, incumbent, previous_study)
    return run_worker(
        run_id, data, config, space, settings, storage_url, incumbent, objective_factory=objective_factory
    )


@dataclass(frozen=True)
class StageCounts:
    finished: int  # COMPLETE or PRUNED: what the budget counts
    running: int
    waiting: int  # queued: production's params, or a stale trial's retry


def stage_counts(study: optuna.Study, stage: str) -> StageCounts:
    trials = [t for t in fresh_trials(study) if _stage(t) == stage]
    return StageCounts(
        finished=sum(1 for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)),
        running=sum(1 for t in trials if t.state == TrialState.RUNNING),
        waiting=sum(1 for t in trials if t.state == TrialState.WAITING),
    )


def worker_seed(seed: int, worker: int) -> int:
    """Worker 0 samples exactly as a one-process search; the others must not repeat its draws."""
    return seed + 7919 * worker


def run_worker(
    run_id: str,
    data: PreparedData,
    config: PipelineConfig,
    space: dict[str, ParamSpec],
    settings: SearchSettings,
    storage_url: str,
    incumbent: dict[str, Any] | None = None,
    worker: int = 0,
    storage_patience_seconds: int | None = None,
    objective_factory: ObjectiveFactory = make_objective,
) -> optuna.Study:
    """Work on the prepared study until it holds the budget of each stage, or the timeout.

    Any number of these may run at once, in separate processes, on a PostgreSQL store; running
    one again after the budget is spent changes nothing. A database outage shorter than
    ``storage_patience_seconds`` (``RETUNE_STORAGE_PATIENCE_SECONDS``, default 300) is ridden
    out: the trial it broke is failed as stale and retried; a longer one raises.
    """
    if worker > 0 and is_sqlite(storage_url):
        raise ConfigError("parallel search workers need a PostgreSQL Optuna store, not SQLite")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    patience = storage_patience_seconds or env_seconds(
        "RETUNE_STORAGE_PATIENCE_SECONDS", STORAGE_PATIENCE_SECONDS
    )
    model_space, _ = split_space(space)
    grid_ = StrategyGrid.from_space(space, config.hyperparams, config.strategy_grid_points, incumbent)
    storage = make_storage(storage_url)
    study = retrying(
        lambda: optuna.load_study(
            study_name=study_name(run_id),
            storage=storage,
            sampler=make_sampler(
                settings.mode, model_space, worker_seed(config.seed, worker), config.sampler
            ),
            pruner=make_pruner(config.pruner, config.n_folds),
        ),
        patience,
    )
    if not study.user_attrs.get(PREPARED):
        raise RuntimeError(f"study {study.study_name} is not prepared: run the search step's prepare first")
    stages = [("coarse", settings.n_trials)]
    if config.two_stage and settings.mode != "grid":
        coarse = max(settings.n_trials // 2, 1)
        stages = [("coarse", coarse), ("fine", settings.n_trials - coarse)]
    started = time.monotonic()
    deadline = started + settings.timeout_minutes * 60
    lock = StudyLock(storage_url, study.study_name)
    try:
        for stage, budget in stages:
            stage_space = model_space
            if stage == "fine":
                best = best_fresh_trial(study)
                if best is None:
                    break
                stage_space = refine(model_space, best.params)
                study.sampler = make_sampler(
                    settings.mode, stage_space, worker_seed(config.seed + 1, worker), config.sampler
                )
            target = budget
            if settings.mode == "grid":
                target = min(budget, grid_size(grid(model_space)))
            objective = objective_factory(data, config, stage_space, settings.objective, grid_)
            log.info(
                "search worker %d: %s stage to %d finished trials (%s/%s, objective=%s, %d strategy "
                "variants each, timeout %.1f min) in %s",
                worker,
                stage,
                target,
                settings.mode,
                config.sampler,
                settings.objective,
                grid_.size,
                settings.timeout_minutes,
                study.study_name,
            )
            if not work_on_stage(study, objective, stage, target, deadline, lock, started, patience, worker):
                break
    finally:
        lock.close()  # its connection, and the lock if a failure left it held
    return study


def work_on_stage(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    stage: str,
    target: int,
    deadline: float,
    lock: StudyLock,
    started: float,
    patience: int,
    worker: int,
) -> bool:
    """Run trials of ``stage`` until the study holds ``target`` finished ones (True) or time is up.

    The worker loop itself, apart from how the objective is made: the storage benchmark runs it
    with a trivial objective to measure what one study sustains."""
    poll = 1.0  # a waiting worker re-reads the study this often: it exits within 1 s of the last trial
    outage_since: float | None = None
    while time.monotonic() < deadline:
        try:
            with lock:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    # under the lock: a stale trial's retry is queued before anyone counts
                    optuna.storages.fail_stale_trials(study)
                counts = stage_counts(study, stage)
                if counts.finished >= target:
                    return True
                wait = counts.finished + counts.running >= target
                if not wait:  # ask() takes a queued trial first, else samples a new one
                    study.optimize(
                        _claimed(objective, stage, lock, worker),
                        n_trials=1,
                        callbacks=[_progress(started)],
                        gc_after_trial=False,
                    )
        except optuna.exceptions.UpdateFinishedTrialError as exc:
            # our trial was failed as stale while it ran (its heartbeats were lost): its retry is queued
            log.warning("a trial of %s was retried elsewhere while it ran: %s", study.study_name, exc)
            continue
        except Exception as exc:
            if not storage_failure(exc):
                raise
            now = time.monotonic()
            outage_since = outage_since or now
            if now - outage_since > patience:
                log.error(
                    "optuna storage unreachable for %.0fs, giving up: %s",
                    now - outage_since,
                    short_error(exc),
                )
                raise
            log.warning(
                "optuna storage unreachable (%.0fs), retrying: %s", now - outage_since, short_error(exc)
            )
            time.sleep(poll)
            continue
        outage_since = None
        if wait:  # the rest of the budget is running elsewhere; it may still go stale and come back
            time.sleep(poll)
    log.info("study %s: timeout reached in stage %s", study.study_name, stage)
    return False


def refine(space: dict[str, ParamSpec], best: dict[str, Any], fraction: float = 0.25) -> dict[str, ParamSpec]:
    """The fine stage's space: each numeric range shrunk to ``fraction`` of its span around the best.

    Categorical choices stay as they are: Optuna cannot change them inside one study.
    """
    out: dict[str, ParamSpec] = {}
    for name, spec in space.items():
        if isinstance(spec, Categorical) or name not in best:
            out[name] = spec
            continue
        log = isinstance(spec, FloatRange) and spec.log
        to, back = (math.log, math.exp) if log else (float, float)
        half = fraction * (to(spec.high) - to(spec.low)) / 2
        low = max(to(spec.low), min(to(best[name]) - half, to(spec.high) - 2 * half))
        high = min(to(spec.high), low + 2 * half)
        if isinstance(spec, IntRange):
            lo = spec.low + math.floor((back(low) - spec.low) / spec.step) * spec.step
            hi = spec.low + math.ceil((back(high) - spec.low) / spec.step) * spec.step
            out[name] = spec if hi <= lo else spec.model_copy(update={"low": lo, "high": hi})
        else:
            out[name] = spec.model_copy(update={"low": back(low), "high": back(high)})
    return out


def _claimed(objective: Callable[[optuna.Trial], float], stage: str, lock: StudyLock, worker: int):
    """The trial exists and is RUNNING: tag its stage (and who runs it), then let the others count."""

    def run(trial: optuna.Trial) -> float:
        trial.set_user_attr(TrialAttr.STAGE, stage)
        trial.set_user_attr(TrialAttr.WORKER, worker)
        lock.release()
        return objective(trial)

    return run


def _stage(trial: optuna.trial.FrozenTrial) -> str:
    return trial.user_attrs.get(TrialAttr.STAGE, "coarse")


def _progress(started: float):
    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        best = best_fresh_trial(study)
        log.info(
            "trial %d %s %s best=%s (%.0fs)",
            trial.number,
            trial.state.name,
            _shown_value(trial),
            None if best is None else round(best.value, 4),  # type: ignore[arg-type]
            time.monotonic() - started,
        )

    return report


def _shown_value(trial: optuna.trial.FrozenTrial) -> str:
    """A pruned trial's value over the folds it ran (``folds_value``), not Optuna's."""
    partial = folds_value(trial)
    if trial.state == TrialState.PRUNED and partial is not None:
        return f"after {len(trial.user_attrs[TrialAttr.FOLD_METRICS])} fold(s) value={partial:.4f}"
    return f"value={None if trial.value is None else round(trial.value, 4)}"
