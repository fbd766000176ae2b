"""The deployed model trains as the search's folds do: early-stopped, or every bar for ``epochs``."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.config import HyperParams, PipelineConfig
from pipelines.data.synthetic import ar1
from pipelines.training.lifecycle import train_from_scratch
from pipelines.training.trainer import predict
from pipelines.windowing import PreparedData

PARAMS = HyperParams(lr=5e-3, hidden_size=8, num_layers=1, seq_len=5, epochs=3, batch_size=64)

pytestmark = pytest.mark.usefixtures("single_thread_torch")


def _data(last_returns_scale: float = 1.0) -> PreparedData:
    data = PreparedData.from_bars(ar1(600, seed=3, phi=0.2).bars, 600)
    target = data.target.copy()
    target.iloc[-40:-1] *= last_returns_scale  # the newest bars' labels
    return PreparedData(data.bars, data.features, target)


def _newest_window_predictions(data: PreparedData, config: PipelineConfig) -> np.ndarray:
    trained = train_from_scratch(data, PARAMS, config, 600)
    scaled = trained.scaler.transform(data.features)
    x = np.stack([scaled[i - PARAMS.seq_len + 1 : i + 1] for i in range(len(scaled) - 20, len(scaled))])
    return predict(trained.result.network, x.astype(np.float32))


def test_without_an_inner_split_every_bar_is_fitted_for_every_epoch():
    config = PipelineConfig(inner_val_fraction=0, val_bars=100, seeds_per_trial=2)
    trained = train_from_scratch(_data(), PARAMS, config, 600)
    assert len(trained.result.history) == PARAMS.epochs and not trained.result.stopped_early
    assert all(row["val_loss"] is None for row in trained.result.history)
    # the newest bars' labels are trained on: other labels there give another model
    assert not np.allclose(
        _newest_window_predictions(_data(), config), _newest_window_predictions(_data(-1.0), config)
    )


def test_with_an_inner_split_the_newest_bars_only_validate():
    config = PipelineConfig(inner_val_fraction=0.2, val_bars=100, seeds_per_trial=2)
    trained = train_from_scratch(_data(), PARAMS, config, 600)
    assert all(row["val_loss"] is not None for row in trained.result.history)
