"""Samplers and pruners by name: the config's ``mode``/``sampler`` and ``pruner``."""

from __future__ import annotations

import warnings

import optuna

from pipelines.config import ConfigError
from pipelines.param_specs import Categorical, ParamSpec
from pipelines.search.space import grid


def make_sampler(
    mode: str, space: dict[str, ParamSpec], seed: int, bayesian: str = "tpe"
) -> optuna.samplers.BaseSampler:
    """Random, grid, or a Bayesian sampler: TPE (default), CMA-ES (numeric spaces) or a GP.

    Optuna 5's TPE is a constant liar by default: running trials of other workers count as bad,
    so parallel workers do not sample next to each other.
    """
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
