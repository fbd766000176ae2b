"""Train/serve parity: the live predictor, fed one bar at a time, equals the training path."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

import pipelines.predictor as predictor_module
from models.families import BUILTIN
from models.networks import build_network
from pipelines.config import HyperParams
from pipelines.evaluation.parity import PARITY_TOLERANCE, batch_predictions, check_parity
from pipelines.features.core import WARMUP, WEEKDAYS, FeatureScaler, compute_features, next_return
from pipelines.predictor import BarError, LivePredictor
from pipelines.training.trainer import architecture

# each family with the options that change its computation most (routing, patching, reversal)
FAMILY_OPTIONS: dict[str, dict] = {
    "moe_transformer": {"n_experts": 3, "top_k": 2, "nhead": 4},
    "mamba": {"bidirectional": True, "patch_len": 3, "stride_ratio": 0.5, "d_state": 4},
}


def _predictor(
    bars: pd.DataFrame, family: str, seq_len: int = 10, horizons: int = 1, members: int = 1
) -> LivePredictor:
    params = HyperParams(
        **FAMILY_OPTIONS.get(family, {}),
        model_family=family,
        hidden_size=16,
        num_layers=2,
        seq_len=seq_len,
        entry_threshold=0.05,
        long_short=True,
    )
    scaler = FeatureScaler.fit(compute_features(bars), next_return(bars))
    torch.manual_seed(3)
    network = build_network(architecture(params, len(scaler.features), horizons, members))
    return LivePredictor("k", params, scaler, network)


@pytest.mark.parametrize(
    ("family", "horizons", "members"),
    [(family, 1, 1) for family in BUILTIN]
    + [("lstm", 3, 1), ("lstm", 1, 4), ("lstm", 3, 3), ("transformer", 1, 2)]
    + [("moe_transformer", 3, 2), ("mamba", 3, 2)],
)
def test_live_updates_reproduce_the_training_path(make_bars, family, horizons, members):
    bars = make_bars(400, seed=11)
    predictor = _predictor(bars, family, horizons=horizons, members=members)
    features = compute_features(bars)
    start = 250
    result = check_parity(predictor, bars, features, start)
    assert result.passed, result
    assert result.n_bars == len(bars) - start
    assert result.max_prediction_diff <= PARITY_TOLERANCE and result.max_feature_diff <= PARITY_TOLERANCE
    # the predictions are not trivially equal: they vary from bar to bar
    assert batch_predictions(predictor, features, start).std() > 1e-4
    signal = predictor.predict_bars(bars)
    assert len(signal["horizon_predictions"]) == horizons
    assert signal["horizon_predictions"][0] == signal["prediction"]


def test_hourly_bars_keep_parity_with_their_time_of_day_features(make_bars):
    """Intraday models also see the time of day (known in advance): live and training agree."""
    bars = make_bars(400, seed=13)
    bars["timestamp"] = pd.date_range("2024-03-04 00:00", periods=len(bars), freq="h")
    predictor = _predictor(bars, "lstm")
    assert {"tod_sin", "tod_cos"} <= set(predictor.scaler.features)
    result = check_parity(predictor, bars, compute_features(bars), 250)
    assert result.passed, result
    assert result.max_prediction_diff <= PARITY_TOLERANCE and result.max_feature_diff <= PARITY_TOLERANCE


def test_a_serving_bug_fails_parity(make_bars, monkeypatch):
    """A live feature that drifts from training (here: one bar short) is caught."""
    bars = make_bars(300, seed=12)
    predictor = _predictor(bars, "lstm")
    real = predictor_module.newest_feature_row

    def off_by_one(window):
        return real({col: list(values)[:-1] + [list(values)[-2]] for col, values in window.items()})

    monkeypatch.setattr(predictor_module, "newest_feature_row", off_by_one)
    result = check_parity(predictor, bars, compute_features(bars), 200)
    assert not result.passed
    assert result.max_feature_diff > 1e-3


def test_warm_up_then_one_signal_per_bar(make_bars):
    bars = make_bars(120, seed=13)
    predictor = _predictor(bars, "lstm", seq_len=5)
    signals = [predictor.update(bar) for bar in bars.to_dict("records")]
    first = next(i for i, s in enumerate(signals) if s is not None)
    assert first == predictor.bars_needed - 1 == WARMUP + 5 - 2
    assert all(s is not None for s in signals[first:])
    last = signals[-1]
    assert last["bar"] == str(bars["timestamp"].iloc[-1])
    assert last["position"] in (-1, 0, 1)
    vol = last["features"]["vol_20"]
    assert np.isclose(last["expected_return"], predictor.scaler.expected_return(last["prediction"], vol))


def test_predict_bars_uses_only_the_trailing_bars(make_bars):
    bars = make_bars(300, seed=14)
    predictor = _predictor(bars, "transformer")
    from_all = predictor.predict_bars(bars)
    from_tail = predictor.predict_bars(bars.tail(predictor.bars_needed))
    assert from_all["prediction"] == from_tail["prediction"]
    with pytest.raises(ValueError, match=f"need at least {predictor.bars_needed} bars"):
        predictor.predict_bars(bars.tail(predictor.bars_needed - 1))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"close": float("nan")}, "close=nan must be finite"),
        ({"high": -1.0}, "high=-1.0 must be finite and > 0"),
        ({"volume": "lots"}, "volume='lots' is not a number"),
        ({"timestamp": "2019-01-01"}, "is not after the previous bar"),
    ],
)
def test_bad_bars_are_refused_and_leave_the_state_alone(make_bars, change, message):
    bars = make_bars(100, seed=15)
    predictor = _predictor(bars, "lstm", seq_len=5)
    records = bars.to_dict("records")
    for bar in records[:-1]:
        predictor.update(bar)
    with pytest.raises(BarError, match=message):
        predictor.update({**records[-1], **change})
    assert predictor.update(records[-1]) == _predictor(bars, "lstm", seq_len=5).predict_bars(bars)


def test_missing_field_is_named(make_bars):
    bars = make_bars(30, seed=16)
    predictor = _predictor(bars, "lstm", seq_len=5)
    bar = bars.iloc[0].to_dict()
    del bar["volume"]
    with pytest.raises(BarError, match="missing 'volume'"):
        predictor.update(bar)


def test_signals_do_not_depend_on_where_the_warm_up_started(make_bars):
    """Warm-up stability: once warm, a predictor started at bar 0 and one started later agree."""
    bars = make_bars(260, seed=17)
    early, late = _predictor(bars, "lstm"), _predictor(bars, "lstm")
    records = bars.to_dict("records")
    from_start = [early.update(bar) for bar in records]
    from_later = [late.update(bar) for bar in records[100:]]
    assert from_start[100 + late.bars_needed :] == from_later[late.bars_needed :]


def test_a_tampered_or_foreign_checkpoint_is_refused_by_the_predictor(tmp_path, make_bars):
    from models.checkpoint import WEIGHTS, CheckpointError, save_checkpoint
    from pipelines.features.core import feature_fingerprint

    bars = make_bars(100, seed=18)
    predictor = _predictor(bars, "lstm")
    spec = architecture(predictor.params, len(predictor.scaler.features))
    meta = {"scaler": predictor.scaler.to_dict(), "feature_fingerprint": feature_fingerprint()}
    sha = save_checkpoint(tmp_path / "ok", copy.deepcopy(predictor.network).float(), spec, meta)
    loaded = LivePredictor.from_checkpoint(tmp_path / "ok", sha, predictor.params, "k")
    assert loaded.predict_bars(bars)["prediction"] == pytest.approx(
        predictor.predict_bars(bars)["prediction"]
    )

    save_checkpoint(tmp_path / "foreign", predictor.network, spec, {**meta, "feature_fingerprint": "0" * 16})
    with pytest.raises(CheckpointError, match="trained on features"):
        LivePredictor.from_checkpoint(tmp_path / "foreign", None, predictor.params, "k")  # type: ignore[arg-type]
    with (tmp_path / "ok" / WEIGHTS).open("r+b") as fh:
        fh.seek(-8, 2)
        fh.write(b"\x00" * 8)
    with pytest.raises(CheckpointError, match="sha256"):
        LivePredictor.from_checkpoint(tmp_path / "ok", sha, predictor.params, "k")


@pytest.mark.parametrize(
    ("bar", "message"),
    [({"open": 1.0}, "missing 'timestamp'"), ({"timestamp": "not a time"}, "is not a time")],
)
def test_a_bar_without_a_usable_time_is_named(make_bars, bar, message):
    predictor = _predictor(make_bars(30, seed=19), "lstm", seq_len=5)
    with pytest.raises(BarError, match=message):
        predictor.update(bar)


def test_time_zone_aware_bars_are_read_as_utc(make_bars):
    bars = make_bars(120, seed=20)
    aware = bars.assign(timestamp=bars["timestamp"].dt.tz_localize("UTC").dt.tz_convert("America/New_York"))
    naive_signal = _predictor(bars, "lstm").predict_bars(bars)
    assert _predictor(bars, "lstm").predict_bars(aware) == naive_signal


# what every checkpoint written before the weekday one-hot carries (feature definition 3), and
# before vol_10 (definition 4)
FINGERPRINT_BEFORE_ONE_HOT = "409a39c524ff96a0"
FINGERPRINT_BEFORE_VOL_10 = "3503059488717100"


@pytest.mark.parametrize(
    ("fingerprint", "dropped"),
    [
        (FINGERPRINT_BEFORE_ONE_HOT, {"vol_10", *(f"dow_{day}" for day in WEEKDAYS)}),
        (FINGERPRINT_BEFORE_VOL_10, {"vol_10"}),
        ("fedcba9876543210", None),
    ],
)
def test_a_model_saved_before_a_feature_was_added_is_still_served_with_parity(
    make_bars, tmp_path, fingerprint, dropped
):
    """An upgrade does not strand the deployed model: a checkpoint of feature definition 3 (no
    ``vol_10``, no ``dow_mon`` .. columns) or 4 (no ``vol_10``) loads, reads only its own
    columns, and keeps parity; a checkpoint of a definition this code cannot serve is refused."""
    from models.checkpoint import CheckpointError, save_checkpoint

    bars = make_bars(400, seed=11)
    features = compute_features(bars)
    before = features.drop(columns=sorted(dropped or set()))
    scaler = FeatureScaler.fit(before, next_return(bars))
    params = HyperParams(hidden_size=16, num_layers=1, seq_len=10, entry_threshold=0.05, long_short=True)
    spec = architecture(params, len(scaler.features), 1, 1)
    torch.manual_seed(3)
    meta = {"feature_fingerprint": fingerprint, "scaler": scaler.to_dict()}
    sha = save_checkpoint(tmp_path / "ckpt", build_network(spec), spec, meta)
    if dropped is None:
        with pytest.raises(CheckpointError, match=f"trained on features {fingerprint}"):
            LivePredictor.from_checkpoint(tmp_path / "ckpt", sha, params, "k")
        return
    predictor = LivePredictor.from_checkpoint(tmp_path / "ckpt", sha, params, "k")
    assert not dropped & set(predictor.scaler.features)  # its own columns
    assert "vol_20" in predictor.scaler.features
    result = check_parity(predictor, bars, features, 250)
    assert result.passed and result.n_bars == 150, result


def test_the_live_position_reads_the_prediction_in_units_of_the_models_spread(make_bars):
    """A model whose predictions span a hundredth of the target's spread still trades at an
    entry threshold of 0.05: live and batch both read predictions over its ``prediction_std``."""
    bars = make_bars(400, seed=11)
    features = compute_features(bars)
    predictor = _predictor(bars, "lstm")
    raw = batch_predictions(predictor, features, 250).to_numpy()
    cautious = copy.deepcopy(predictor.network)
    with torch.no_grad():  # the same network, its output a hundredth as wide
        cautious.head.weight.mul_(0.01)
        cautious.head.bias.mul_(0.01)
    scaler = predictor.scaler.with_prediction_spread(raw * 0.01)
    live = LivePredictor("k", predictor.params, scaler, cautious)
    result = check_parity(live, bars, features, 250)
    assert result.passed and result.n_bars == 150, result
    predictions = batch_predictions(live, features, 250).to_numpy()
    assert np.abs(predictions).max() < 0.05  # read raw, no prediction would cross the threshold
    signal = live.predict_bars(bars)
    reading = scaler.signal(signal["prediction"])
    assert signal["position"] == (1 if reading > 0.05 else -1 if reading < -0.05 else 0)
    assert (np.abs(scaler.signal(predictions)) > 0.05).mean() > 0.5  # read in its spread, it trades
