"""The threshold rule: from a model's predictions to target positions (-1, 0, 1).

It sits below search, evaluation and the live predictor, so the backtests and live trading
apply the same rule without the live path importing vectorbt.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def positions_from_predictions(
    predictions: pd.Series, thresholds: list[float], long_short: bool
) -> pd.DataFrame:
    """One column of target positions (-1, 0, 1) per entry threshold."""
    pos = target_positions(predictions.to_numpy(), thresholds, long_short)
    return pd.DataFrame(pos, index=predictions.index, columns=pd.Index(thresholds, name="threshold"))


def target_positions(predictions: np.ndarray, thresholds: list[float], long_short: bool) -> np.ndarray:
    """The threshold rule (long above +t, short below -t if allowed, else flat): predictions x
    thresholds. The live predictor applies it to one prediction, the backtests to many."""
    pred = np.asarray(predictions, dtype=float)[:, None]
    thr = np.asarray(thresholds, dtype=float)[None, :]
    pos = np.where(pred > thr, 1, 0)
    if long_short:
        pos = np.where(pred < -thr, -1, pos)
    return pos
