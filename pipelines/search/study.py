"""One Optuna study per run, on the RDB store, resumable by run id."""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from typing import Any

import optuna

from pipelines.config import ConfigError, ParamSpec, PipelineConfig
from pipelines.search.objective import PreparedData, make_objective
from pipelines.search.space import contains, grid, grid_size

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 60


@dataclass(frozen=True)
class SearchSettings:
    n_trials: int
    timeout_minutes: float
    objective: str = "sharpe"
    mode: str = "bayesian"


def study_name(run_id: str) -> str:
    return f"retune-{run_id}"


def make_storage(url: str) -> optuna.storages.RDBStorage:
    """RDB storage with heartbeats: a trial whose worker died is failed and retried once."""
    with warnings.catch_warnings():  # heartbeats are "experimental" since v2.8; we rely on them
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=2 * HEARTBEAT_SECONDS,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
        )


def make_sampler(mode: str, space: dict[str, ParamSpec], seed: int) -> optuna.samplers.BaseSampler:
    if mode == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if mode == "grid":
        return optuna.samplers.GridSampler(grid(space), seed=seed)
    if mode == "bayesian":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=8, multivariate=True)
    raise ConfigError(f"unknown search mode {mode!r} (bayesian, random, grid)")


def run_study(
    run_id: str,
    data: PreparedData,
    config: PipelineConfig,
    space: dict[str, ParamSpec],
    settings: SearchSettings,
    storage_url: str,
    incumbent: dict[str, Any] | None = None,
) -> optuna.Study:
    """Create or resume the run's study and run trials until the budget is spent.

    Resuming counts finished trials against ``n_trials`` so an Airflow retry does not
    run the whole budget again.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=make_storage(storage_url),
        study_name=study_name(run_id),
        sampler=make_sampler(settings.mode, space, config.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
        direction="maximize",
        load_if_exists=True,
    )
    done = [t for t in study.trials if t.state.is_finished()]
    if not study.trials and incumbent and contains(space, incumbent):
        study.enqueue_trial({k: incumbent[k] for k in space}, user_attrs={"incumbent": True})
    remaining = settings.n_trials - len(done)
    if settings.mode == "grid":
        remaining = min(remaining, grid_size(grid(space)) - len(done))
    if remaining <= 0:
        log.info("study %s already has %d finished trials", study.study_name, len(done))
        return study
    log.info(
        "search: %d trials (%s, objective=%s, timeout %.1f min) in study %s",
        remaining,
        settings.mode,
        settings.objective,
        settings.timeout_minutes,
        study.study_name,
    )
    started = time.monotonic()

    def progress(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        best = study.best_value if any(t.value is not None for t in study.trials) else None
        log.info(
            "trial %d %s value=%s best=%s (%.0fs)",
            trial.number,
            trial.state.name,
            None if trial.value is None else round(trial.value, 4),
            None if best is None else round(best, 4),
            time.monotonic() - started,
        )

    study.optimize(
        make_objective(data, config, space, settings.objective),
        n_trials=remaining,
        timeout=settings.timeout_minutes * 60,
        callbacks=[progress],
        gc_after_trial=False,
    )
    return study
