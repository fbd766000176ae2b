"""pipelines.search.strategy: the strategy variants a trial scores on one set of predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.config import HyperParams
from pipelines.param_specs import Categorical, FloatRange, IntRange
from pipelines.search.strategy import StrategyGrid, split_space
from pipelines.trading.positions import positions_from_predictions

BASE = HyperParams(entry_threshold=0.2, long_short=False)


def test_fixed_strategy_params_give_one_variant():
    grid = StrategyGrid.from_space({}, BASE, points=6)
    assert grid == StrategyGrid((0.2,), (False,))
    assert grid.size == 1


def test_ranges_are_spread_over_points_and_categoricals_taken_as_is():
    space = {
        "entry_threshold": FloatRange(type="uniform", low=0.0, high=0.5),
        "long_short": Categorical(type="categorical", choices=(False, True)),
    }
    grid = StrategyGrid.from_space(space, BASE, points=6)
    assert grid.thresholds == pytest.approx((0.0, 0.1, 0.2, 0.3, 0.4, 0.5))
    assert grid.long_short == (False, True)
    assert grid.size == 12
    log = StrategyGrid.from_space(
        {"entry_threshold": FloatRange(type="loguniform", low=0.01, high=1.0)}, BASE, points=3
    )
    assert log.thresholds == pytest.approx((0.01, 0.1, 1.0))


def test_incumbent_threshold_joins_the_grid_only_inside_the_range():
    space = {"entry_threshold": FloatRange(type="uniform", low=0.0, high=0.5)}
    grid = StrategyGrid.from_space(space, BASE, points=3, incumbent={"entry_threshold": 0.13})
    assert grid.thresholds == pytest.approx((0.0, 0.13, 0.25, 0.5))
    outside = StrategyGrid.from_space(space, BASE, points=3, incumbent={"entry_threshold": 0.9})
    assert outside.thresholds == pytest.approx((0.0, 0.25, 0.5))


def test_each_positions_column_is_its_variant():
    space = {
        "entry_threshold": IntRange(type="int", low=0, high=1),
        "long_short": Categorical(type="categorical", choices=(False, True)),
    }
    grid = StrategyGrid.from_space(space, BASE, points=2)
    preds = pd.Series(
        np.random.default_rng(3).normal(0, 1, 50), index=pd.bdate_range("2021-01-01", periods=50)
    )
    positions = grid.positions(preds)
    assert positions.shape == (50, grid.size)
    for column in range(grid.size):
        variant = grid.variant(column)
        expected = positions_from_predictions(preds, [variant["entry_threshold"]], variant["long_short"])
        np.testing.assert_array_equal(positions.iloc[:, column].to_numpy(), expected.iloc[:, 0].to_numpy())
    assert (positions.iloc[:, grid.size - 1] == -1).any()  # the long-short variants do go short
    assert not (positions.iloc[:, 0] == -1).any()


def test_split_space_keeps_strategy_params_out_of_the_optuna_space():
    space = {
        "lr": FloatRange(type="loguniform", low=1e-4, high=1e-2),
        "entry_threshold": FloatRange(type="uniform", low=0.0, high=0.5),
        "long_short": Categorical(type="categorical", choices=(False, True)),
    }
    model, strategy = split_space(space)
    assert list(model) == ["lr"]
    assert sorted(strategy) == ["entry_threshold", "long_short"]
