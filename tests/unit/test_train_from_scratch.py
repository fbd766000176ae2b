"""The deployed model trains as the search's folds do: early-stopped, or every bar for ``epochs``."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.config import HyperParams, PipelineConfig
from pipelines.data.synthetic import ar1
from pipelines.training.lifecycle import train_from_scratch
from pipelines.training.trainer import predict, train_new
from pipelines.windowing import PreparedData, labelled_windows

PARAMS = HyperParams(lr=5e-3, hidden_size=8, num_layers=1, seq_len=5, epochs=3, batch_size=64)
BARS = 600

pytestmark = pytest.mark.usefixtures("single_thread_torch")


def _data() -> PreparedData:
    return PreparedData.from_bars(ar1(BARS, seed=3, phi=0.2).bars, BARS)


def test_without_an_inner_split_every_bar_is_fitted_for_every_epoch():
    config = PipelineConfig(inner_val_fraction=0, val_bars=100, seeds_per_trial=2)
    data = _data()
    trained = train_from_scratch(data, PARAMS, config, BARS)
    assert len(trained.result.history) == PARAMS.epochs and not trained.result.stopped_early
    assert all(row["val_loss"] is None for row in trained.result.history)
    # the same network as one trained on every labelled window, the newest included
    scaled = trained.scaler.transform(data.features)
    x, y = labelled_windows(
        scaled, trained.scaler.scale_target(data.target, data.features), PARAMS.seq_len, 0, BARS
    )
    assert len(x) == BARS - 1 - (data.features.isna().any(axis=1).sum() + PARAMS.seq_len - 1)
    direct = train_new(PARAMS, x, y, seed=config.seed, members=2)
    np.testing.assert_array_equal(predict(trained.result.network, x[-50:]), predict(direct.network, x[-50:]))


def test_with_an_inner_split_the_newest_bars_validate():
    config = PipelineConfig(inner_val_fraction=0.2, val_bars=100, seeds_per_trial=2)
    trained = train_from_scratch(_data(), PARAMS, config, BARS)
    assert all(row["val_loss"] is not None for row in trained.result.history)


def test_a_volatility_scaled_target_is_what_the_deployed_model_learns():
    """``target: volatility_scaled``: the scaler the model is saved with says so, and its labels
    are each return over its bar's vol_20 (fine-tune and the live predictor read it from there)."""
    config = PipelineConfig(inner_val_fraction=0, val_bars=100, target="volatility_scaled")
    data = _data()
    trained = train_from_scratch(data, PARAMS, config, BARS)
    assert (
        trained.scaler.target_per_volatility
        and not train_from_scratch(data, PARAMS, PipelineConfig(), BARS).scaler.target_per_volatility
    )
    labels = trained.scaler.scale_target(data.target, data.features)
    per_vol = (data.target / data.features["vol_20"]).to_numpy()
    known = ~np.isnan(per_vol)
    np.testing.assert_allclose(
        labels[known], (per_vol[known] - trained.scaler.target_mean) / trained.scaler.target_std
    )


def test_the_deployed_model_carries_the_spread_of_its_own_predictions():
    """Its entry threshold is read in units of that spread (``FeatureScaler.signal``), measured
    on the windows it trained on."""
    config = PipelineConfig(inner_val_fraction=0, val_bars=100, seeds_per_trial=2)
    data = _data()
    trained = train_from_scratch(data, PARAMS, config, BARS)
    scaled = trained.scaler.transform(data.features)
    x, _ = labelled_windows(
        scaled, trained.scaler.scale_target(data.target, data.features), PARAMS.seq_len, 0, BARS
    )
    spread = float(predict(trained.result.network, x).std())
    assert spread > 0 and np.isclose(trained.scaler.prediction_std, spread)
    assert np.isclose(trained.scaler.signal(2 * spread), 2.0)
