"""Seeding a run's study, exactly once: carry over the previous run's trials that fit the new
bounds, queue production's params first, then the baseline family's reference trial."""

from __future__ import annotations

import logging
from typing import Any

import optuna

from pipelines.config import PipelineConfig
from pipelines.param_specs import Categorical, ParamSpec
from pipelines.search.heartbeats import make_storage
from pipelines.search.samplers import make_pruner, make_sampler
from pipelines.search.space import distributions, in_space
from pipelines.search.strategy import StrategyGrid, split_space
from pipelines.search.study import SearchSettings, fresh_trials, study_name
from pipelines.terms import TrialAttr
from pipelines.trading.objectives import OBJECTIVES

log = logging.getLogger(__name__)

PREPARED = "retune:prepared"  # study user attr: carry-over and the incumbent are in, exactly once

CARRIED_FROM = "retune:carried_over_trial"  # system attr: the previous study's trial number


def prepare_study(
    run_id: str,
    config: PipelineConfig,
    space: dict[str, ParamSpec],
    settings: SearchSettings,
    storage_url: str,
    incumbent: dict[str, Any] | None = None,
    previous_study: str | None = None,
) -> optuna.Study:
    """Create the run's study and seed it once: carried-over trials, then production's params.

    Idempotent: a second call (an Airflow retry, or a retry after a crash half-way) loads the
    study and adds only what is missing; once the study is marked prepared it changes nothing.
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
        direction=OBJECTIVES[settings.objective].direction,
        load_if_exists=True,
    )
    if study.user_attrs.get(PREPARED):
        return study
    if fresh_trials(study) and not any(t.user_attrs.get(TrialAttr.INCUMBENT) for t in study.trials):
        # a study from before the prepared mark whose trials already ran: seeding now would
        # put production's params after them, not first
        study.set_user_attr(PREPARED, True)
        return study
    study.set_user_attr(TrialAttr.MODEL_FAMILY, _family(model_space, config))
    study.set_user_attr(TrialAttr.N_VARIANTS, grid_.size)
    study.set_user_attr(TrialAttr.OBJECTIVE, settings.objective)
    _seed_study(
        study,
        storage,
        model_space,
        incumbent,
        previous_study,
        settings.objective,
        settings.mode == "grid",
        config.hyperparams.model_family,
        config.baseline_family,
    )
    study.set_user_attr(PREPARED, True)
    return study


def carry_over(study: optuna.Study, previous: optuna.Study, space: dict[str, ParamSpec]) -> int:
    """Copy the previous run's complete trials that lie inside the new space into a fresh study.

    Optuna keeps out-of-range history and cannot change categorical choices inside one study,
    so each run gets a fresh study and only the trials that still fit are carried over. Each
    carried trial remembers its number in the previous study, so a retried prepare (its first
    attempt died half-way) adds only what is missing. Returns how many the study now holds.
    """
    dists = distributions(space)
    present = {
        t.system_attrs.get(CARRIED_FROM) for t in study.trials if TrialAttr.CARRIED_OVER_FROM in t.user_attrs
    }
    fits = [
        t
        for t in previous.trials
        if t.state == optuna.trial.TrialState.COMPLETE
        and TrialAttr.CARRIED_OVER_FROM not in t.user_attrs  # its own trials only: no pile-up across runs
        and TrialAttr.TRAIN_FAMILY not in t.user_attrs  # its value is another family's, not these params'
        and in_space(space, t.params)
    ]
    study.add_trials(
        [
            optuna.trial.create_trial(
                params={k: t.params[k] for k in space},
                distributions=dists,
                value=t.value,
                user_attrs={
                    TrialAttr.CARRIED_OVER_FROM: previous.study_name,
                    TrialAttr.STRATEGY: t.user_attrs.get(TrialAttr.STRATEGY),
                },
                system_attrs={CARRIED_FROM: t.number},
            )
            for t in fits
            if t.number not in present
        ]
    )
    return len(fits)


def _seed_study(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    space: dict[str, ParamSpec],
    incumbent: dict[str, Any] | None,
    previous_study: str | None,
    objective: str,
    grid_mode: bool,
    family: str,
    baseline: str | None = None,
) -> None:
    """A fresh study starts from what is known: earlier trials that fit, production first, then
    the baseline family's reference trial."""
    if previous_study:
        try:
            previous = optuna.load_study(study_name=previous_study, storage=storage)
        except KeyError:
            previous = None
        same_objective = previous is not None and previous.user_attrs.get(TrialAttr.OBJECTIVE) == objective
        if previous is not None and not same_objective:
            log.info("not carrying over %s: it optimized another objective", previous_study)
        if previous is not None and same_objective:
            n = carry_over(study, previous, space)
            study.set_user_attr(TrialAttr.N_CARRIED_OVER, n)
            log.info("carried over %d trials of %s that fit the new bounds", n, previous_study)
    already = any(t.user_attrs.get(TrialAttr.INCUMBENT) for t in study.trials)
    if incumbent and in_space(space, incumbent) and not grid_mode and not already:  # a grid holds it
        attrs: dict[str, Any] = {TrialAttr.INCUMBENT: True}
        if "model_family" not in space and incumbent.get("model_family", family) != family:
            attrs[TrialAttr.TRAIN_FAMILY] = incumbent["model_family"]  # production scored as it trades
        study.enqueue_trial({k: incumbent[k] for k in space}, user_attrs=attrs)
    if baseline and not grid_mode and not any(t.user_attrs.get(TrialAttr.BASELINE) for t in study.trials):
        # the baseline is sampled otherwise
        study.enqueue_trial({}, user_attrs={TrialAttr.BASELINE: True, TrialAttr.TRAIN_FAMILY: baseline})


def _family(space: dict[str, ParamSpec], config: PipelineConfig) -> str:
    """The model family every trial of the study uses, or ``mixed`` when it is searched."""
    spec = space.get("model_family")
    if isinstance(spec, Categorical):
        return str(spec.choices[0]) if len(spec.choices) == 1 else "mixed"
    return config.hyperparams.model_family
