"""pipelines.search.space: grid mode, membership and suggestions."""

from __future__ import annotations

import optuna
import pytest

from pipelines.config import ConfigError, HyperParams
from pipelines.param_specs import Categorical, FloatRange, IntRange
from pipelines.search.space import grid, grid_size, resolve, suggest
from pipelines.search.space import in_space as contains

SPACE = {
    "lr": FloatRange(type="loguniform", low=1e-4, high=1e-2),
    "dropout": FloatRange(type="uniform", low=0.0, high=0.3),
    "hidden_size": Categorical(type="categorical", choices=(8, 16, 32)),
    "seq_len": IntRange(type="int", low=5, high=30, step=5),
}


def test_grid_rejects_float_ranges_naming_them():
    with pytest.raises(ConfigError) as err:
        grid(SPACE)
    msg = str(err.value)
    assert "grid mode needs int or categorical" in msg
    assert "lr" in msg and "dropout" in msg
    assert "hidden_size" not in msg and "seq_len" not in msg


def test_grid_enumerates_int_and_categorical():
    space = {k: v for k, v in SPACE.items() if k in ("hidden_size", "seq_len")}
    values = grid(space)
    assert values == {"hidden_size": [8, 16, 32], "seq_len": [5, 10, 15, 20, 25, 30]}
    assert grid_size(values) == 18
    assert grid_size({}) == 0


@pytest.mark.parametrize(
    ("values", "inside"),
    [
        ({"lr": 1e-3, "dropout": 0.1, "hidden_size": 16, "seq_len": 20}, True),
        ({"lr": 1e-4, "dropout": 0.0, "hidden_size": 8, "seq_len": 5}, True),  # lower bounds
        ({"lr": 1e-2, "dropout": 0.3, "hidden_size": 32, "seq_len": 30}, True),  # upper bounds
        ({"lr": 2e-2, "dropout": 0.1, "hidden_size": 16, "seq_len": 20}, False),
        ({"lr": 1e-3, "dropout": -0.1, "hidden_size": 16, "seq_len": 20}, False),
        ({"lr": 1e-3, "dropout": 0.1, "hidden_size": 64, "seq_len": 20}, False),
        ({"lr": 1e-3, "dropout": 0.1, "hidden_size": 16, "seq_len": 12}, False),  # off the step
        ({"lr": 1e-3, "dropout": 0.1, "hidden_size": 16, "seq_len": 35}, False),
        ({"lr": 1e-3, "dropout": 0.1, "hidden_size": 16}, False),  # missing
    ],
)
def test_contains(values, inside):
    assert contains(SPACE, values) is inside


def test_suggest_stays_in_the_space_and_resolve_overrides():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    base = HyperParams(epochs=3)
    for _ in range(20):
        trial = study.ask()
        values = suggest(trial, SPACE)
        assert set(values) == set(SPACE)
        assert contains(SPACE, values)
        params = resolve(base, values)
        assert params.hidden_size == values["hidden_size"] and params.epochs == 3
        study.tell(trial, 0.0)
