"""One Optuna study per run, on the RDB store, resumable by run id."""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import optuna

from pipelines.config import Categorical, ConfigError, FloatRange, IntRange, ParamSpec, PipelineConfig
from pipelines.search.objective import PreparedData, make_objective
from pipelines.search.space import contains, distributions, grid, grid_size
from pipelines.search.strategy import StrategyGrid, split_space

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


def make_sampler(
    mode: str, space: dict[str, ParamSpec], seed: int, bayesian: str = "tpe"
) -> optuna.samplers.BaseSampler:
    """Random, grid, or a Bayesian sampler: TPE (default), CMA-ES (numeric spaces) or a GP."""
    if mode == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if mode == "grid":
        return optuna.samplers.GridSampler(grid(space), seed=seed)
    if mode != "bayesian":
        raise ConfigError(f"unknown search mode {mode!r} (bayesian, random, grid)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if bayesian == "tpe":
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=8, multivariate=True)
        if bayesian == "gp":
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=8)
        if bayesian == "cmaes":
            categorical = [
                n for n, spec in space.items() if isinstance(spec, Categorical) and len(spec.choices) > 1
            ]
            if categorical:
                raise ConfigError(
                    f"sampler cmaes searches int and float ranges only; {', '.join(categorical)} "
                    "are categorical (use sampler tpe or gp, or fix them)"
                )
            return optuna.samplers.CmaEsSampler(
                seed=seed, n_startup_trials=4, warn_independent_sampling=False
            )
    raise ConfigError(f"unknown sampler {bayesian!r} (tpe, cmaes, gp)")


def make_pruner(name: str, n_folds: int) -> optuna.pruners.BasePruner:
    """Median (running mean vs other trials), Hyperband (folds as resource), Wilcoxon (fold vs fold)."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=n_folds, reduction_factor=3)
    if name == "wilcoxon":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=2)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {name!r} (median, hyperband, wilcoxon, none)")


def fresh_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials this study ran itself (not carried over from an earlier run)."""
    return [t for t in study.trials if "carried_over_from" not in t.user_attrs]


def best_fresh_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best complete trial scored on this run's data; carried-over trials only guide sampling."""
    done = [t for t in fresh_trials(study) if t.state == optuna.trial.TrialState.COMPLETE]
    return max(done, key=lambda t: t.value, default=None)  # type: ignore[arg-type,return-value]


def carry_over(study: optuna.Study, previous: optuna.Study, space: dict[str, ParamSpec]) -> int:
    """Copy the previous run's complete trials that lie inside the new space into a fresh study.

    Optuna keeps out-of-range history and cannot change categorical choices inside one study,
    so each run gets a fresh study and only the trials that still fit are carried over.
    """
    dists = distributions(space)
    carried = [
        optuna.trial.create_trial(
            params={k: t.params[k] for k in space},
            distributions=dists,
            value=t.value,
            user_attrs={"carried_over_from": previous.study_name, "strategy": t.user_attrs.get("strategy")},
        )
        for t in previous.trials
        if t.state == optuna.trial.TrialState.COMPLETE
        and "carried_over_from" not in t.user_attrs  # its own trials only: no pile-up across runs
        and contains(space, t.params)
    ]
    study.add_trials(carried)
    return len(carried)


def refine(space: dict[str, ParamSpec], best: dict[str, Any], fraction: float = 0.25) -> dict[str, ParamSpec]:
    """The fine stage's space: each numeric range shrunk to ``fraction`` of its span around the best.

    Categorical choices stay as they are: Optuna cannot change them inside one study.
    """
    out: dict[str, ParamSpec] = {}
    for name, spec in space.items():
        if isinstance(spec, Categorical) or name not in best:
            out[name] = spec
            continue
        log = isinstance(spec, FloatRange) and spec.type == "loguniform"
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


def run_study(
    run_id: str,
    data: PreparedData,
    config: PipelineConfig,
    space: dict[str, ParamSpec],
    settings: SearchSettings,
    storage_url: str,
    incumbent: dict[str, Any] | None = None,
    previous_study: str | None = None,
) -> optuna.Study:
    """Create or resume the run's study and run trials until the budget is spent.

    Resuming counts finished trials against ``n_trials`` so an Airflow retry does not run the
    whole budget again. Strategy parameters are not searched: every trial scores the whole
    strategy grid on its predictions. Production's model parameters are trial 0.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    model_space, _ = split_space(space)
    grid_ = StrategyGrid.from_space(space, config.hyperparams, config.strategy_grid_points, incumbent)
    storage = make_storage(storage_url)
    study = optuna.create_study(
        storage=storage,
        study_name=study_name(run_id),
        sampler=make_sampler(settings.mode, model_space, config.seed, config.sampler),
        pruner=make_pruner(config.pruner, config.n_folds),
        direction="maximize",
        load_if_exists=True,
    )
    if not study.trials:
        study.set_user_attr("model_family", _family(model_space, config))
        study.set_user_attr("n_variants", grid_.size)
        study.set_user_attr("objective", settings.objective)
        _seed_study(
            study,
            storage,
            model_space,
            incumbent,
            previous_study,
            settings.objective,
            settings.mode == "grid",
        )
    stages = [("coarse", model_space, settings.n_trials)]
    if config.two_stage and settings.mode != "grid":
        coarse = max(settings.n_trials // 2, 1)
        stages = [("coarse", model_space, coarse), ("fine", model_space, settings.n_trials - coarse)]
    started = time.monotonic()
    deadline = started + settings.timeout_minutes * 60
    for stage, stage_space, budget in stages:
        if stage == "fine":
            best = best_fresh_trial(study)
            if best is None:
                break
            stage_space = refine(model_space, best.params)
            study.sampler = make_sampler(settings.mode, stage_space, config.seed + 1, config.sampler)
        done = [t for t in fresh_trials(study) if t.state.is_finished() and _stage(t) == stage]
        remaining = budget - len(done)
        if settings.mode == "grid":
            remaining = min(remaining, grid_size(grid(model_space)) - len(done))
        if remaining <= 0 or time.monotonic() >= deadline:
            log.info("study %s: stage %s already has %d finished trials", study.study_name, stage, len(done))
            continue
        log.info(
            "search: %d %s trials (%s/%s, objective=%s, %d strategy variants each, timeout %.1f min) in %s",
            remaining,
            stage,
            settings.mode,
            config.sampler,
            settings.objective,
            grid_.size,
            settings.timeout_minutes,
            study.study_name,
        )
        study.optimize(
            _staged(make_objective(data, config, stage_space, settings.objective, grid_), stage),
            n_trials=remaining,
            timeout=max(deadline - time.monotonic(), 1.0),
            callbacks=[_progress(started)],
            gc_after_trial=False,
        )
    return study


def _seed_study(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    space: dict[str, ParamSpec],
    incumbent: dict[str, Any] | None,
    previous_study: str | None,
    objective: str,
    grid_mode: bool,
) -> None:
    """A fresh study starts from what is known: earlier trials that fit, then production first."""
    if previous_study:
        try:
            previous = optuna.load_study(study_name=previous_study, storage=storage)
        except KeyError:
            previous = None
        same_objective = previous is not None and previous.user_attrs.get("objective") == objective
        if previous is not None and not same_objective:
            log.info("not carrying over %s: it optimized another objective", previous_study)
        if previous is not None and same_objective:
            n = carry_over(study, previous, space)
            study.set_user_attr("n_carried_over", n)
            log.info("carried over %d trials of %s that fit the new bounds", n, previous_study)
    if incumbent and contains(space, incumbent) and not grid_mode:  # a grid holds it already
        study.enqueue_trial({k: incumbent[k] for k in space}, user_attrs={"incumbent": True})


def _family(space: dict[str, ParamSpec], config: PipelineConfig) -> str:
    """The model family every trial of the study uses, or ``mixed`` when it is searched."""
    spec = space.get("model_family")
    if isinstance(spec, Categorical):
        return str(spec.choices[0]) if len(spec.choices) == 1 else "mixed"
    return config.hyperparams.model_family


def _stage(trial: optuna.trial.FrozenTrial) -> str:
    return trial.user_attrs.get("stage", "coarse")


def _staged(objective, stage: str):
    def run(trial: optuna.Trial) -> float:
        trial.set_user_attr("stage", stage)
        return objective(trial)

    return run


def _progress(started: float):
    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        best = best_fresh_trial(study)
        log.info(
            "trial %d %s value=%s best=%s (%.0fs)",
            trial.number,
            trial.state.name,
            None if trial.value is None else round(trial.value, 4),
            None if best is None else round(best.value, 4),  # type: ignore[arg-type]
            time.monotonic() - started,
        )

    return report
