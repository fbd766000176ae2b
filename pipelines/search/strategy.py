"""Strategy parameters: scored side by side on one set of predictions, not searched one by one.

Entry threshold and long/short act on what a trained model predicts, so a trial trains once
and backtests every strategy variant in one vectorized vectorbt call; the trial's value is its
best variant's. Searching them with Optuna would retrain the same model for each value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import STRATEGY_PARAMS, HyperParams
from pipelines.param_specs import Categorical, FloatRange, IntRange, ParamSpec
from pipelines.trading.positions import positions_from_predictions


@dataclass(frozen=True)
class StrategyGrid:
    thresholds: tuple[float, ...]
    long_short: tuple[bool, ...]

    @classmethod
    def from_space(
        cls,
        space: dict[str, ParamSpec],
        base: HyperParams,
        points: int,
        incumbent: dict[str, Any] | None = None,
    ) -> StrategyGrid:
        """The variants a search space asks for; fixed values where a parameter is not searched.

        The incumbent's (production's) threshold joins a range's grid so that production's own
        strategy is always among the variants scored.
        """
        threshold = space.get("entry_threshold")
        if threshold is None:
            thresholds: tuple[float, ...] = (base.entry_threshold,)
        elif isinstance(threshold, Categorical):
            thresholds = tuple(float(v) for v in threshold.choices)
        elif isinstance(threshold, FloatRange) and threshold.log:
            thresholds = tuple(float(v) for v in np.geomspace(threshold.low, threshold.high, points))
        else:
            assert isinstance(threshold, FloatRange | IntRange)
            thresholds = tuple(float(v) for v in np.linspace(threshold.low, threshold.high, points))
        current = (incumbent or {}).get("entry_threshold")
        numeric = isinstance(threshold, FloatRange | IntRange) and isinstance(current, int | float)
        if numeric and threshold.low <= current <= threshold.high:  # type: ignore[union-attr,operator]
            thresholds = tuple(sorted({*thresholds, float(current)}))  # type: ignore[arg-type]
        sides = space.get("long_short")
        if sides is None:
            long_short: tuple[bool, ...] = (base.long_short,)
        else:
            assert isinstance(sides, Categorical)
            long_short = tuple(bool(v) for v in sides.choices)
        return cls(tuple(dict.fromkeys(thresholds)), tuple(dict.fromkeys(long_short)))

    @property
    def size(self) -> int:
        return len(self.thresholds) * len(self.long_short)

    def variant(self, column: int) -> dict[str, Any]:
        """The strategy parameters of one positions column."""
        side, threshold = divmod(column, len(self.thresholds))
        return {"entry_threshold": self.thresholds[threshold], "long_short": self.long_short[side]}

    def positions(self, predictions: pd.Series) -> pd.DataFrame:
        """One positions column per variant, in ``variant`` order."""
        thresholds = list(self.thresholds)
        frames = [positions_from_predictions(predictions, thresholds, side) for side in self.long_short]
        out = pd.concat(frames, axis=1)
        out.columns = pd.RangeIndex(out.shape[1], name="variant")
        return out


def split_space(space: dict[str, ParamSpec]) -> tuple[dict[str, ParamSpec], dict[str, ParamSpec]]:
    """(model parameters Optuna searches, strategy parameters the grid covers)."""
    model = {k: v for k, v in space.items() if k not in STRATEGY_PARAMS}
    strategy = {k: v for k, v in space.items() if k in STRATEGY_PARAMS}
    return model, strategy
