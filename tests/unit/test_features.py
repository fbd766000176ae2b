"""pipelines.features.core: no look-ahead, live/batch parity, scaler round trip, sequences."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.features.core import (
    FEATURES,
    WARMUP,
    FeatureScaler,
    compute_features,
    feature_fingerprint,
    next_return,
    sequences,
)


def _assert_same(a: pd.DataFrame, b: pd.DataFrame, atol: float = 1e-12) -> None:
    assert a.index.equals(b.index)
    x, y = a.to_numpy(), b.to_numpy()
    assert np.array_equal(np.isnan(x), np.isnan(y))
    both = ~np.isnan(x)
    assert np.max(np.abs(x[both] - y[both]), initial=0.0) <= atol


def test_layout(make_bars):
    bars = make_bars(100, seed=0)
    feats = compute_features(bars)
    assert tuple(feats.columns) == FEATURES
    assert len(feats) == len(bars)
    assert (feats.index == pd.DatetimeIndex(bars["timestamp"])).all()
    assert feats.iloc[: WARMUP - 1].isna().all().all()  # incomplete warm-up rows are masked
    assert feats.iloc[WARMUP - 1 :].notna().all().all()


def test_the_two_volatilities_are_trailing_standard_deviations_of_log_returns(make_bars):
    bars = make_bars(100, seed=4)
    feats = compute_features(bars)
    log_returns = np.log(bars["close"]).diff()
    for name, window in (("vol_20", 20), ("vol_10", 10)):
        expected = log_returns.rolling(window).std().to_numpy()[WARMUP - 1 :]
        np.testing.assert_allclose(feats[name].to_numpy()[WARMUP - 1 :], expected, rtol=1e-10)


@pytest.mark.parametrize("t", [WARMUP, 80, 150])
def test_perturbing_later_bars_never_changes_earlier_features(make_bars, t):
    bars = make_bars(200, seed=1)
    base = compute_features(bars)
    rng = np.random.default_rng(t)
    later = bars.index > t
    shocked = bars.copy()
    factor = np.exp(rng.normal(0, 0.2, later.sum()))
    for col in ("open", "high", "low", "close"):
        shocked.loc[later, col] = shocked.loc[later, col] * factor
    shocked.loc[later, "volume"] = shocked.loc[later, "volume"] * rng.uniform(0.1, 10, later.sum())
    moved = compute_features(shocked)
    _assert_same(moved.iloc[: t + 1], base.iloc[: t + 1])
    # ... and the perturbation really did reach the features after t
    assert not np.allclose(moved.iloc[t + 1 :].to_numpy(), base.iloc[t + 1 :].to_numpy())


@pytest.mark.parametrize("t", [WARMUP - 1, 60, 120])
def test_appending_bars_never_changes_earlier_features(make_bars, t):
    bars = make_bars(200, seed=2)
    truncated = compute_features(bars.iloc[: t + 1])
    full = compute_features(bars)
    _assert_same(full.iloc[: t + 1], truncated)


@pytest.mark.parametrize("seed", [3, 4])
def test_trailing_warmup_bars_reproduce_the_last_row(make_bars, seed):
    bars = make_bars(400, seed=seed)
    full = compute_features(bars).iloc[-1]
    live = compute_features(bars.iloc[-WARMUP:].reset_index(drop=True)).iloc[-1]
    assert live.notna().all()
    assert live.name == full.name
    np.testing.assert_allclose(live.to_numpy(), full.to_numpy(), rtol=0, atol=1e-9)


def test_fewer_than_warmup_bars_give_no_complete_row(make_bars):
    bars = make_bars(WARMUP - 1, seed=5)
    assert compute_features(bars).isna().all(axis=1).all()


def test_next_return_is_the_following_bar_log_return(make_bars):
    bars = make_bars(50, seed=6)
    label = next_return(bars)
    close = bars["close"].to_numpy()
    np.testing.assert_allclose(label.iloc[:-1].to_numpy(), np.log(close[1:] / close[:-1]), atol=1e-12)
    assert np.isnan(label.iloc[-1])


def test_scaler_round_trip_through_json(make_bars):
    bars = make_bars(300, seed=7)
    feats = compute_features(bars)
    scaler = FeatureScaler.fit(feats, next_return(bars))
    restored = FeatureScaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    assert restored == scaler
    np.testing.assert_array_equal(restored.transform(feats), scaler.transform(feats))
    scaled = scaler.transform(feats)[WARMUP - 1 :]
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(scaled.std(axis=0, ddof=1), 1.0, atol=1e-9)


def test_a_prediction_is_read_in_units_of_the_models_own_spread(make_bars):
    bars = make_bars(300, seed=7)
    scaler = FeatureScaler.fit(compute_features(bars), next_return(bars))
    assert scaler.prediction_std == 1.0 and scaler.signal(0.3) == 0.3  # before it is measured
    spread = scaler.with_prediction_spread(np.array([0.02, -0.02, 0.02, -0.02, np.nan]))
    assert spread.prediction_std == pytest.approx(0.02) and spread.signal(0.01) == pytest.approx(0.5)
    assert FeatureScaler.from_dict(json.loads(json.dumps(spread.to_dict()))) == spread
    assert scaler.with_prediction_spread(np.zeros(5)).prediction_std == 1.0  # no spread to read
    # a model saved before the spread reads its threshold in target spreads, as it was tuned
    old = {k: v for k, v in spread.to_dict().items() if k != "prediction_std"}
    assert FeatureScaler.from_dict(old).signal(0.3) == 0.3


def test_a_volatility_scaled_target_is_each_return_over_its_bars_volatility(make_bars):
    bars = make_bars(300, seed=9)
    feats, returns = compute_features(bars), next_return(bars)
    scaler = FeatureScaler.fit(feats, returns, per_volatility=True)
    learned = scaler.scale_target(returns, feats)
    known = ~np.isnan(learned)
    assert known.sum() == len(bars) - WARMUP  # the warm-up bars and the last (no next bar) are unknown
    np.testing.assert_allclose(learned[known].mean(), 0.0, atol=1e-9)
    np.testing.assert_allclose(learned[known].std(ddof=1), 1.0, atol=1e-9)
    per_vol = (returns / feats["vol_20"]).to_numpy()
    np.testing.assert_allclose(learned[known], ((per_vol - scaler.target_mean) / scaler.target_std)[known])
    # the live output back in return units: the bar's volatility times the unscaled forecast
    vol = float(feats["vol_20"].iloc[-1])
    assert np.isclose(scaler.expected_return(0.5, vol), (0.5 * scaler.target_std + scaler.target_mean) * vol)
    assert FeatureScaler.from_dict(json.loads(json.dumps(scaler.to_dict()))) == scaler
    plain = FeatureScaler.fit(feats, returns)
    assert (
        not plain.target_per_volatility
        and plain.expected_return(0.5, vol) == 0.5 * plain.target_std + plain.target_mean
    )
    # a model saved before the option learns returns
    old = {k: v for k, v in plain.to_dict().items() if k != "target_per_volatility"}
    assert FeatureScaler.from_dict(old) == plain


def test_scaler_uses_its_own_column_order(make_bars):
    bars = make_bars(120, seed=8)
    feats = compute_features(bars)
    scaler = FeatureScaler.fit(feats, next_return(bars))
    shuffled = feats[list(reversed(feats.columns))]
    np.testing.assert_array_equal(scaler.transform(shuffled), scaler.transform(feats))


def test_sequences_shapes_and_alignment():
    n, f, seq_len, warm = 100, 7, 10, 24
    rng = np.random.default_rng(0)
    scaled = rng.normal(size=(n, f))
    scaled[:warm] = np.nan
    windows, ends = sequences(scaled, seq_len)
    expected = n - warm - seq_len + 1
    assert windows.shape == (expected, seq_len, f)
    assert ends.shape == (expected,)
    assert ends[0] == warm + seq_len - 1 and ends[-1] == n - 1
    for i in (0, expected // 2, expected - 1):
        np.testing.assert_array_equal(windows[i], scaled[ends[i] - seq_len + 1 : ends[i] + 1])
    assert windows.flags["C_CONTIGUOUS"]


def test_sequences_shorter_than_window():
    windows, ends = sequences(np.zeros((3, 7)), 5)
    assert windows.shape == (0, 5, 7)
    assert ends.shape == (0,)


def test_fingerprint_is_stable():
    assert feature_fingerprint() == feature_fingerprint()
    assert len(feature_fingerprint()) == 16
    int(feature_fingerprint(), 16)
