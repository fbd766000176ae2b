"""Turn the seed search-space format into Optuna suggestions, samplers and grids."""

from __future__ import annotations

import itertools
from typing import Any

import optuna

from pipelines.config import ConfigError, HyperParams, family_schema
from pipelines.param_specs import Categorical, FloatRange, IntRange, ParamSpec, contains


def suggest(trial: optuna.Trial, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """One value per searched parameter, drawn through the trial."""
    values: dict[str, Any] = {}
    for name, spec in space.items():
        if isinstance(spec, FloatRange):
            values[name] = trial.suggest_float(name, spec.low, spec.high, log=spec.log)
        elif isinstance(spec, IntRange):
            values[name] = trial.suggest_int(name, spec.low, spec.high, step=spec.step)
        else:
            values[name] = trial.suggest_categorical(name, list(spec.choices))
    return values


def distributions(space: dict[str, ParamSpec]) -> dict[str, optuna.distributions.BaseDistribution]:
    """The Optuna distributions ``suggest`` draws from, e.g. to add carried-over trials."""
    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for name, spec in space.items():
        if isinstance(spec, FloatRange):
            out[name] = optuna.distributions.FloatDistribution(spec.low, spec.high, log=spec.log)
        elif isinstance(spec, IntRange):
            out[name] = optuna.distributions.IntDistribution(spec.low, spec.high, step=spec.step)
        else:
            out[name] = optuna.distributions.CategoricalDistribution(list(spec.choices))
    return out


def resolve(base: HyperParams, values: dict[str, Any]) -> HyperParams:
    """The hyperparameters a trial uses: fixed values overridden by the searched ones. Values
    of another family's hyperparameters (a search over families, or the linear baseline) are
    dropped: the chosen family never sees, stores or deploys them."""
    params = base.model_copy(update=values)
    extra = params.model_extra or {}
    accepted = family_schema(params.model_family)
    if all(name in accepted for name in extra):
        return params
    fields = params.model_dump(exclude=set(extra))
    return HyperParams(**fields, **{k: v for k, v in extra.items() if k in accepted})


def grid(space: dict[str, ParamSpec]) -> dict[str, list[Any]]:
    """The grid for ``mode=grid``: only int and categorical parameters can be enumerated."""
    floats = [name for name, spec in space.items() if isinstance(spec, FloatRange)]
    if floats:
        raise ConfigError(
            f"grid mode needs int or categorical parameters; {', '.join(floats)} are float ranges"
        )
    out: dict[str, list[Any]] = {}
    for name, spec in space.items():
        if isinstance(spec, IntRange):
            out[name] = list(range(spec.low, spec.high + 1, spec.step))
        elif isinstance(spec, Categorical):
            out[name] = list(spec.choices)
    return out


def grid_size(space: dict[str, list[Any]]) -> int:
    return len(list(itertools.product(*space.values()))) if space else 0


def in_space(space: dict[str, ParamSpec], values: dict[str, Any]) -> bool:
    """Whether ``values`` (e.g. the production params) is a point of ``space``."""
    return all(name in values and contains(spec, values[name]) for name, spec in space.items())
