"""The narrow step's service: gather the evidence (data regime, past studies, the deployed model),
narrow the config's search space with the configured rules and record every firing."""

from __future__ import annotations

import logging

import pandas as pd

from pipelines.config import PipelineConfig
from pipelines.narrowing.base import Evidence
from pipelines.narrowing.diagnostics import TrainingDiagnostics
from pipelines.narrowing.history import prior_trials
from pipelines.narrowing.optimizer import DataDrivenOptimizer, data_evidence
from pipelines.narrowing.rules import DEFAULT_RULES, rules_by_name
from pipelines.runfolder import NarrowingRecord
from pipelines.store.repository import Repository

log = logging.getLogger(__name__)


def gather_evidence(
    config: PipelineConfig,
    bars: pd.DataFrame,
    repo: Repository,
    optuna_url: str,
    run_id: str,
    pin_architecture: bool,
) -> Evidence:
    """What the rules may read: the regime before the holdout (what decides the search ranges
    must not peek at it either), the top trials of past studies and the deployed model."""
    key = config.model_key
    bars = bars.iloc[: -config.holdout_bars].tail(config.window_bars)
    top, best = prior_trials(repo, optuna_url, key, run_id)
    active = repo.active_config(key)
    deployed = repo.deployed_model(key)
    return Evidence(
        **data_evidence(bars, recent_bars=config.calendar().bars_in(config.recent_window)),
        prior_top_trials=top,
        prior_best_params=best,
        incumbent=active.params if active else None,
        deployed_params=deployed.params if deployed else None,
        pin_architecture=pin_architecture,
        model_families=config.model_families(),
        training=(
            TrainingDiagnostics.from_metrics(deployed.metrics, trained_how=deployed.trained_how)
            if deployed
            else None
        ),
    )


def narrow_run(
    config: PipelineConfig,
    bars: pd.DataFrame,
    repo: Repository,
    optuna_url: str,
    run_id: str,
    pin_architecture: bool,
) -> NarrowingRecord:
    """Narrow the run's search space; store the firings; return the narrowing record."""
    names = config.narrowing_rules  # checked by name when the config was read
    rules = DEFAULT_RULES if names is None else rules_by_name(names)
    evidence = gather_evidence(config, bars, repo, optuna_url, run_id, pin_architecture)
    result = DataDrivenOptimizer(rules).narrow(config.search_space, evidence)
    repo.replace_firings(run_id, [dict(f.__dict__) for f in result.firings])
    for firing in result.firings:
        log.info("narrow: %s %s -> %s (%s)", firing.param, firing.before, firing.after, firing.rationale)
    return NarrowingRecord(**result.to_dict(), evidence=evidence.to_dict())
