"""The one feature implementation, shared by training (batch) and live inference (newest bar).

Every feature at bar t is a function of the trailing ``WARMUP`` bars ending at t, and nothing
else. ``feature_rows`` computes it for a stack of such windows: training passes the sliding
windows over the whole history, the live predictor passes just the newest one — the same code
on the same numbers, which is what makes train/serve parity hold. The fitted scaling
(mean/std of the training window) travels with the model checkpoint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

ROLL = 20
FAST_ROLL = 10  # the faster volatility: a regime switch shows in half the bars of vol_20's
# Observed: known only once the bar has closed. Known in advance: calendar values, known for
# any future bar too (a multi-horizon model may lean on them). Both kinds are recorded with
# every model.
# Volatility twice: a 20-bar one is steady but needs ~10 bars to register a switch of regime,
# a 10-bar one half that at twice the sampling noise. As the best reading of twenty planted
# volatility regimes (their true threshold), vol_10 passed the gate on 18 of 20, vol_20 on 16,
# vol_5 on 12 (bench/vol_regime_causal_rule.py --windows).
OBSERVED = ("ret_1", "ret_5", "vol_20", "vol_10", "range", "body", "ma_gap_20", "volume_z_20")
# Day of week and time of day: a calendar feature constant over a model's training window
# (time of day for daily bars, both for weekly ones; Saturday and Sunday for equity bars) carries
# nothing and is left out of that model (``FeatureScaler.fit``); intraday models get the hour.
# The weekday comes twice: as an angle (neighbouring days alike) and one-hot, so a linear model
# can single out one day. On ten Friday-effect series the linear baseline's trial scored
# 1.24-2.61 on the angle alone, 1.54-3.78 with the one-hot, the oracle 1.67-3.76
# (bench/weekday_encoding_scan.py).
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
KNOWN_IN_ADVANCE = ("dow_sin", "dow_cos", "tod_sin", "tod_cos", *(f"dow_{day}" for day in WEEKDAYS))
FEATURES = OBSERVED + KNOWN_IN_ADVANCE
FEATURE_KINDS = {"observed": list(OBSERVED), "known_in_advance": list(KNOWN_IN_ADVANCE)}
WARMUP = ROLL + 5  # bars in a feature window; earlier rows are incomplete (NaN)
OHLCV = ("open", "high", "low", "close", "volume")
WINDOW_COLUMNS = ("timestamp", *OHLCV)  # timestamps as int64 nanoseconds
_NS_PER_DAY = 86_400 * 10**9


def feature_rows(windows: dict[str, np.ndarray]) -> np.ndarray:
    """Feature rows (n, len(FEATURES)) for ``n`` windows of the last WARMUP bars, per column of
    ``WINDOW_COLUMNS`` (each array n x WARMUP, oldest bar first, timestamps as int64
    nanoseconds); row i describes the last bar of window i."""
    stamps = windows["timestamp"][:, -1]  # UTC nanoseconds: the same clock for training and live
    weekday = (stamps // _NS_PER_DAY + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    angle = 2 * np.pi * weekday / 7
    day_angle = 2 * np.pi * (stamps % _NS_PER_DAY) / _NS_PER_DAY  # time of day (UTC), as a fraction
    close = windows["close"]
    log_close = np.log(close)
    rets = np.diff(log_close[:, -(ROLL + 1) :], axis=1)  # the last ROLL one-bar log returns
    log_volume = np.log1p(windows["volume"][:, -ROLL:])
    vol_std = log_volume.std(axis=1, ddof=1)
    safe_std = np.where(vol_std > 0, vol_std, 1.0)
    volume_z = np.where(vol_std > 0, (log_volume[:, -1] - log_volume.mean(axis=1)) / safe_std, 0.0)
    last_close = close[:, -1]
    return np.column_stack(
        [
            rets[:, -1],
            log_close[:, -1] - log_close[:, -6],
            rets.std(axis=1, ddof=1),
            rets[:, -FAST_ROLL:].std(axis=1, ddof=1),
            np.log(windows["high"][:, -1] / windows["low"][:, -1]),
            np.log(last_close / windows["open"][:, -1]),
            last_close / close[:, -ROLL:].mean(axis=1) - 1.0,
            volume_z,
            np.sin(angle),
            np.cos(angle),
            np.sin(day_angle),
            np.cos(day_angle),
            weekday[:, None] == np.arange(len(WEEKDAYS)),
        ]
    )


def compute_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Feature rows indexed by timestamp; the first WARMUP-1 rows are incomplete (NaN)."""
    values = np.full((len(bars), len(FEATURES)), np.nan)
    if len(bars) >= WARMUP:
        columns = {col: bars[col].to_numpy(dtype=np.float64) for col in OHLCV}
        columns["timestamp"] = pd.DatetimeIndex(bars["timestamp"]).as_unit("ns").asi8
        windows = {
            col: np.lib.stride_tricks.sliding_window_view(column, WARMUP) for col, column in columns.items()
        }
        values[WARMUP - 1 :] = feature_rows(windows)
    index = pd.DatetimeIndex(bars["timestamp"], name="timestamp")
    return pd.DataFrame(values, index=index, columns=list(FEATURES))


def newest_feature_row(window: Mapping[str, Iterable[float]]) -> np.ndarray:
    """The feature row of the last bar, from sequences holding (at least) its trailing WARMUP
    bars, per column of ``WINDOW_COLUMNS`` (timestamps as int64 nanoseconds)."""
    arrays = {
        col: np.fromiter(window[col], dtype=np.int64 if col == "timestamp" else np.float64)[None, -WARMUP:]
        for col in WINDOW_COLUMNS
    }
    return feature_rows(arrays)[0]


def next_return(bars: pd.DataFrame) -> pd.Series:
    """Training label: the log return from bar t to t+1 (unknown at t; NaN on the last bar)."""
    log_close = np.log(bars["close"].to_numpy(dtype=float))
    label = pd.Series(log_close, index=pd.DatetimeIndex(bars["timestamp"])).diff().shift(-1)
    return label.rename("next_return")


def feature_kinds(used: Iterable[str]) -> dict[str, list[str]]:
    """``FEATURE_KINDS`` restricted to the features a model uses, for its record."""
    chosen = set(used)
    return {kind: [name for name in names if name in chosen] for kind, names in FEATURE_KINDS.items()}


def model_features(features: pd.DataFrame) -> tuple[str, ...]:
    """The feature columns a model trained on these rows uses: all but the calendar features
    that never change in them (time of day of daily bars; day of week of weekly bars)."""
    valid = features.dropna()
    return tuple(c for c in features.columns if not (c in KNOWN_IN_ADVANCE and valid[c].nunique() <= 1))


@dataclass(frozen=True)
class FeatureScaler:
    """Standardization fitted on a training window and reused unchanged at inference.

    The target (the next-bar return) is centred on its training-window mean as well as scaled:
    a model forecasts the return *beyond* what the instrument earned on average. The average
    itself is what holding the instrument earns for free (the benchmark); left in, a model whose
    forecast is mostly that mean trades its sign, which is buy-and-hold (or short-and-hold) in
    disguise, and its real signal never crosses zero.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    target_std: float
    features: tuple[str, ...] = FEATURES
    target_mean: float = 0.0  # 0 for models saved before the target was centred
    # the config's ``target: volatility_scaled``: each return over its bar's trailing volatility
    target_per_volatility: bool = False
    # The spread (standard deviation) of the model's own next-bar predictions over its training
    # windows, measured once it is trained (``with_prediction_spread``). The threshold rule reads
    # a prediction in units of it (``signal``), so an entry threshold asks the same of a cautious
    # model (ridge's forecasts of a weak edge span a few hundredths of the target's spread, and a
    # threshold of 0.1 target spreads left it no trade) as of a bold one. 1.0 for models saved
    # before: their thresholds read target spreads.
    prediction_std: float = 1.0

    @classmethod
    def fit(cls, features: pd.DataFrame, target: pd.Series, per_volatility: bool = False) -> FeatureScaler:
        valid = features.dropna()
        valid = valid[list(model_features(valid))]
        std = valid.std().replace(0.0, 1.0)
        known = pd.Series(_per_volatility(target, features) if per_volatility else target).dropna()
        return cls(
            mean=tuple(float(x) for x in valid.mean()),
            std=tuple(float(x) for x in std),
            target_std=float(known.std() or 1.0),
            features=tuple(valid.columns),
            target_mean=float(known.mean()) if len(known) else 0.0,
            target_per_volatility=per_volatility,
        )

    def transform(self, features: pd.DataFrame) -> np.ndarray:
        return self.transform_rows(features[list(FEATURES)].to_numpy(dtype=np.float64))

    def transform_rows(self, rows: np.ndarray) -> np.ndarray:
        """Scale feature rows given in ``FEATURES`` order (as ``feature_rows`` returns them)."""
        order = [FEATURES.index(name) for name in self.features]
        return (rows[:, order] - np.asarray(self.mean)) / np.asarray(self.std)

    def scale_target(self, returns: pd.Series | np.ndarray, features: pd.DataFrame) -> np.ndarray:
        """Next-bar returns as the model learns them, ``features`` being their bars' rows: centred
        and scaled, over each bar's volatility first if the model learns that (NaN stays NaN)."""
        values = _per_volatility(returns, features) if self.target_per_volatility else returns
        return (np.asarray(values, dtype=np.float64) - self.target_mean) / self.target_std

    def expected_return(self, prediction: Any, volatility: Any) -> Any:
        """Model outputs back in return units (``volatility``: their bars' ``vol_20``); a number
        or an array of them."""
        value = prediction * self.target_std + self.target_mean
        return value * volatility if self.target_per_volatility else value

    def with_prediction_spread(self, predictions: np.ndarray) -> FeatureScaler:
        """This scaler, carrying the spread of a trained model's ``predictions`` over its training
        windows (left at 1.0 where they do not vary)."""
        finite = np.asarray(predictions, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        spread = float(finite.std()) if len(finite) > 1 else 0.0
        return replace(self, prediction_std=spread if spread > 0 else 1.0)

    def signal(self, prediction: Any) -> Any:
        """A prediction (or an array of them) in units of the model's own spread: what the
        threshold rule reads."""
        return prediction / self.prediction_std

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureScaler:
        return cls(
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            target_std=float(data["target_std"]),
            features=tuple(data["features"]),
            target_mean=float(data.get("target_mean", 0.0)),
            target_per_volatility=bool(data.get("target_per_volatility", False)),
            prediction_std=float(data.get("prediction_std", 1.0)),
        )


def _per_volatility(returns: pd.Series | np.ndarray, features: pd.DataFrame) -> np.ndarray:
    """Each next-bar return over its bar's trailing 20-bar volatility (known at the bar); NaN
    where that is unknown or zero. Squared errors then weigh a calm bar's drift as much as a
    storm's: on raw returns a storm's noise drowns it (bench/vol_scaled_target_scan.py)."""
    volatility = features["vol_20"].to_numpy(dtype=np.float64)
    volatility = np.where(volatility > 0, volatility, np.nan)
    return np.asarray(returns, dtype=np.float64) / volatility


def feature_fingerprint() -> str:
    """Identifies the feature definition; a checkpoint trained on other features is refused."""
    return _fingerprint(FEATURES, FEATURE_KINDS, version=5)


def readable_fingerprints() -> frozenset[str]:
    """The feature definitions a deployed checkpoint may carry and still be served: this one;
    version 4, which lacked only ``vol_10``; and version 3, which lacked the weekday one-hot too.
    Every column they have is computed here as it was then, and a model reads only its own
    columns, so an upgrade does not strand the deployed model. Fine-tuning still wants this
    definition (a new model learns the new columns)."""
    observed = tuple(name for name in OBSERVED if name != "vol_10")
    before_one_hot = KNOWN_IN_ADVANCE[:4]
    v4 = {"observed": list(observed), "known_in_advance": list(KNOWN_IN_ADVANCE)}
    v3 = {"observed": list(observed), "known_in_advance": list(before_one_hot)}
    return frozenset(
        {
            feature_fingerprint(),
            _fingerprint(observed + KNOWN_IN_ADVANCE, v4, version=4),
            _fingerprint(observed + before_one_hot, v3, version=3),
        }
    )


def _fingerprint(features: tuple[str, ...], kinds: dict[str, list[str]], version: int) -> str:
    spec = {"features": features, "kinds": kinds, "roll": ROLL, "warmup": WARMUP, "version": version}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def sequences(scaled: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Sliding windows ending at each bar: (windows[n, seq_len, f], end_positions[n])."""
    if len(scaled) < seq_len:
        return np.empty((0, seq_len, scaled.shape[1])), np.empty(0, dtype=int)
    windows = np.lib.stride_tricks.sliding_window_view(scaled, seq_len, axis=0)
    windows = np.moveaxis(windows, -1, 1)
    ends = np.arange(seq_len - 1, len(scaled))
    ok = ~np.isnan(windows).any(axis=(1, 2))
    return np.ascontiguousarray(windows[ok]), ends[ok]


def windows_ending_in(
    scaled: np.ndarray, seq_len: int, start: int, end: int
) -> tuple[np.ndarray, np.ndarray]:
    """Windows whose last bar lies in [start, end); bars before ``start`` serve as context only."""
    lo = max(start - seq_len + 1, 0)
    windows, ends = sequences(scaled[lo:end], seq_len)
    ends = ends + lo
    keep = ends >= start
    return windows[keep], ends[keep]
