"""The one feature implementation, shared by training (batch) and live inference (latest bar).

Every feature at bar t is computed from bars <= t with fixed-length rolling windows, so the
trailing ``WARMUP`` bars are enough to reproduce the batch value of the newest bar exactly.
The fitted scaling (mean/std of the training window) travels with the model checkpoint.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

ROLL = 20
FEATURES = ("ret_1", "ret_5", "vol_20", "range", "body", "ma_gap_20", "volume_z_20")
WARMUP = ROLL + 5  # bars before the first complete feature row


def compute_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Feature rows indexed by timestamp; the first WARMUP-1 rows are incomplete (NaN)."""
    close = bars["close"].to_numpy(dtype=float)
    log_close = pd.Series(np.log(close))
    ret_1 = log_close.diff()
    log_volume = pd.Series(np.log1p(bars["volume"].to_numpy(dtype=float)))
    vol_mean = log_volume.rolling(ROLL).mean()
    vol_std = log_volume.rolling(ROLL).std()
    frame = pd.DataFrame(
        {
            "ret_1": ret_1,
            "ret_5": log_close.diff(5),
            "vol_20": ret_1.rolling(ROLL).std(),
            "range": np.log(bars["high"].to_numpy(float) / bars["low"].to_numpy(float)),
            "body": np.log(close / bars["open"].to_numpy(float)),
            "ma_gap_20": close / pd.Series(close).rolling(ROLL).mean() - 1.0,
            "volume_z_20": ((log_volume - vol_mean) / vol_std.where(vol_std > 0)).fillna(0.0),
        }
    )
    frame.loc[: WARMUP - 2, :] = np.nan
    frame.index = pd.DatetimeIndex(bars["timestamp"], name="timestamp")
    return frame[list(FEATURES)]


def next_return(bars: pd.DataFrame) -> pd.Series:
    """Training label: the log return from bar t to t+1 (unknown at t; NaN on the last bar)."""
    log_close = np.log(bars["close"].to_numpy(dtype=float))
    label = pd.Series(log_close, index=pd.DatetimeIndex(bars["timestamp"])).diff().shift(-1)
    return label.rename("next_return")


@dataclass(frozen=True)
class FeatureScaler:
    """Standardization fitted on a training window and reused unchanged at inference."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    target_std: float
    features: tuple[str, ...] = FEATURES

    @classmethod
    def fit(cls, features: pd.DataFrame, target: pd.Series) -> FeatureScaler:
        valid = features.dropna()
        std = valid.std().replace(0.0, 1.0)
        return cls(
            mean=tuple(float(x) for x in valid.mean()),
            std=tuple(float(x) for x in std),
            target_std=float(target.dropna().std() or 1.0),
            features=tuple(features.columns),
        )

    def transform(self, features: pd.DataFrame) -> np.ndarray:
        values = features[list(self.features)].to_numpy(dtype=np.float64)
        return (values - np.asarray(self.mean)) / np.asarray(self.std)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureScaler:
        return cls(
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            target_std=float(data["target_std"]),
            features=tuple(data["features"]),
        )


def feature_fingerprint() -> str:
    """Identifies the feature definition; a checkpoint trained on other features is refused."""
    spec = {"features": FEATURES, "roll": ROLL, "warmup": WARMUP, "version": 1}
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
