"""Train/serve parity: the live predictor must reproduce the training path bar for bar.

The training path is what search, fine-tune and the holdout backtests used: features computed
over the whole history in one batch, then windows of scaled rows through the network. The live
path feeds the same bars one at a time to ``LivePredictor.update``. Any difference above
``PARITY_TOLERANCE`` means live trading would not be the strategy that was scored, so the
promotion is blocked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from pipelines.features.core import FEATURES, windows_ending_in
from pipelines.predictor import LivePredictor
from pipelines.trading.positions import positions_from_predictions
from pipelines.training.trainer import next_bar, predict

PARITY_TOLERANCE = 1e-9


@dataclass(frozen=True)
class ParityResult:
    n_bars: int
    max_feature_diff: float
    max_prediction_diff: float
    position_mismatches: int
    tolerance: float = PARITY_TOLERANCE

    @property
    def passed(self) -> bool:
        return (
            self.n_bars > 0
            and self.max_feature_diff <= self.tolerance
            and self.max_prediction_diff <= self.tolerance
            and self.position_mismatches == 0
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def batch_predictions(predictor: LivePredictor, features: pd.DataFrame, start: int) -> pd.Series:
    """The training path: predictions for every bar from ``start`` on, from batch features."""
    scaled = predictor.scaler.transform(features)
    windows, ends = windows_ending_in(scaled, predictor.params.seq_len, start, len(scaled))
    return pd.Series(next_bar(predict(predictor.network, windows)), index=features.index[ends])


def check_parity(
    predictor: LivePredictor, bars: pd.DataFrame, features: pd.DataFrame, start: int
) -> ParityResult:
    """Compare both paths on the bars from ``start`` on (``features`` are the batch features
    of ``bars``, row for row)."""
    expected = batch_predictions(predictor, features, start)
    predictor.reset()
    live_features, live_predictions, live_positions = [], [], []
    for bar in bars.iloc[max(start - predictor.bars_needed + 1, 0) :].to_dict("records"):
        signal = predictor.update(bar)
        if signal is not None and pd.Timestamp(bar["timestamp"]) >= features.index[start]:
            live_features.append([signal["features"][name] for name in FEATURES])
            live_predictions.append(signal["prediction"])
            live_positions.append(signal["position"])
    if len(live_predictions) != len(expected) or not len(expected):
        return ParityResult(min(len(live_predictions), len(expected)), np.inf, np.inf, 0)
    batch_features = features.loc[expected.index, list(FEATURES)].to_numpy()
    params = predictor.params
    batch_positions = positions_from_predictions(
        predictor.scaler.signal(expected), [params.entry_threshold], params.long_short
    )
    return ParityResult(
        n_bars=len(expected),
        max_feature_diff=float(np.max(np.abs(np.asarray(live_features) - batch_features))),
        max_prediction_diff=float(np.max(np.abs(np.asarray(live_predictions) - expected.to_numpy()))),
        position_mismatches=int(np.sum(np.asarray(live_positions) != batch_positions.iloc[:, 0].to_numpy())),
    )
