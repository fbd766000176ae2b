"""Multi-horizon targets with per-horizon loss weights, and calendar (known-in-advance) features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from models.networks import ArchitectureSpec, build_network
from pipelines.config import ConfigError, HyperParams
from pipelines.config_files import parse_config
from pipelines.features.core import (
    FEATURE_KINDS,
    FEATURES,
    KNOWN_IN_ADVANCE,
    WEEKDAYS,
    compute_features,
    model_features,
)
from pipelines.training.trainer import evaluate_loss, next_bar, predict, train_new, weighted_mse
from pipelines.windowing import config_folds, labelled_windows


def test_multi_horizon_labels_are_the_following_next_bar_returns():
    scaled = np.arange(40, dtype=float).reshape(20, 2)
    y = np.arange(20, dtype=float) / 100
    y[-1] = np.nan  # the last bar's next return is unknown
    x, labels = labelled_windows(scaled, y, seq_len=3, start=2, end=20, horizons=3)
    assert labels.shape == (len(x), 3)
    ends = x[:, -1, 0] / 2  # row t of ``scaled`` starts with 2t
    for end, row in zip(ends.astype(int), labels, strict=True):
        np.testing.assert_array_equal(row, y[end : end + 3])
    # windows whose later horizons reach the unknown label are dropped, not padded
    assert int(ends.max()) == 20 - 1 - 3
    single_x, single = labelled_windows(scaled, y, seq_len=3, start=2, end=20)
    assert single.ndim == 1 and len(single_x) == len(x) + 2


def test_weighted_loss_weighs_each_horizon():
    prediction = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    target = torch.tensor([[1.0, 3.0], [1.0, 3.0]])
    assert weighted_mse(prediction, target, torch.tensor([1.0, 0.0])).item() == pytest.approx(1.0)
    assert weighted_mse(prediction, target, torch.tensor([1.0, 1.0])).item() == pytest.approx(5.0)
    assert weighted_mse(prediction[:, 0], target[:, 0], None).item() == pytest.approx(1.0)


def test_a_multi_horizon_model_learns_each_horizon_and_trades_the_first():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 6, 3)).astype(np.float32)
    y = np.stack([x[:, -1, 0], -x[:, -1, 1]], axis=1).astype(np.float64)
    params = HyperParams(hidden_size=16, num_layers=1, seq_len=6, epochs=30, lr=1e-2, batch_size=64)
    result = train_new(params, x, y, seed=0, horizon_weights=(1.0, 0.5))
    out = predict(result.network, x)
    assert out.shape == (512, 2)
    np.testing.assert_array_equal(next_bar(out), out[:, 0])
    for h in range(2):
        assert np.corrcoef(out[:, h], y[:, h])[0, 1] > 0.8
    untrained = train_new(params.model_copy(update={"epochs": 1}), x, y, seed=0, horizon_weights=(1.0, 0.5))
    assert evaluate_loss(result.network, x, y, (1.0, 0.5)) < evaluate_loss(
        untrained.network, x, y, (1.0, 0.5)
    )


def test_horizon_count_is_part_of_the_architecture():
    one = ArchitectureSpec("lstm", 9, 8, 1, 0.0, 10)
    three = ArchitectureSpec("lstm", 9, 8, 1, 0.0, 10, n_outputs=3)
    assert one.shape_differences(three) == ["n_outputs"]
    assert build_network(three)(torch.zeros(4, 10, 9)).shape == (4, 3)
    assert build_network(one)(torch.zeros(4, 10, 9)).shape == (4,)


def test_the_purge_grows_with_the_horizon():
    short = config_folds(1000, parse_config({}))
    long = config_folds(1000, parse_config({"horizon_loss_weights": [1.0, 0.5, 0.25]}))
    assert [f.val_start - f.train_end for f in short] == [1] * len(short)
    assert [f.val_start - f.train_end for f in long] == [3] * len(long)


@pytest.mark.parametrize(
    ("weights", "message"), [([0.0, 1.0], "first"), ([1.0, -0.5], ">= 0"), ([], "at least 1")]
)
def test_bad_horizon_weights_are_refused(weights, message):
    with pytest.raises(ConfigError, match=rf"horizon_loss_weights.*{message}"):
        parse_config({"horizon_loss_weights": weights})


def test_calendar_features_are_known_in_advance_and_encode_the_weekday(make_bars):
    bars = make_bars(60, seed=3, start="2024-01-01")  # a Monday
    features = compute_features(bars)
    assert set(KNOWN_IN_ADVANCE) <= set(FEATURES)
    assert FEATURE_KINDS["known_in_advance"] == list(KNOWN_IN_ADVANCE)
    assert not set(FEATURE_KINDS["observed"]) & set(KNOWN_IN_ADVANCE)
    weekday = pd.DatetimeIndex(bars["timestamp"]).weekday.to_numpy()
    angle = 2 * np.pi * weekday / 7
    valid = features["dow_sin"].notna().to_numpy()
    np.testing.assert_allclose(features["dow_sin"].to_numpy()[valid], np.sin(angle)[valid], atol=1e-12)
    np.testing.assert_allclose(features["dow_cos"].to_numpy()[valid], np.cos(angle)[valid], atol=1e-12)
    # one-hot too, so a linear model can single out one day; columns of days absent from the
    # bars (the weekend of business-day bars) are constant and left out of the model
    one_hot = features[[f"dow_{day}" for day in WEEKDAYS]].to_numpy()[valid]
    np.testing.assert_array_equal(one_hot, np.eye(7)[weekday[valid]])
    used = model_features(features)
    assert [c for c in used if c.startswith("dow_")] == [
        "dow_sin",
        "dow_cos",
        *(f"dow_{d}" for d in WEEKDAYS[:5]),
    ]
