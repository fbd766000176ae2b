"""Live inference: the active config and model, and the signal for each new bar.

A trading system keeps one ``LivePredictor`` and calls ``update`` with every new bar. It holds
only the trailing bars and feature rows it needs, computes the newest feature row with the very
function training uses (``feature_rows``), and runs the same float64 forward pass and threshold
rule the backtests scored — so live signals equal the training path's (train/serve parity).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from models.checkpoint import load_checkpoint
from models.ensemble import live_forward
from pipelines.config import HyperParams
from pipelines.features.core import (
    FEATURES,
    OHLCV,
    WARMUP,
    WINDOW_COLUMNS,
    FeatureScaler,
    newest_feature_row,
    readable_fingerprints,
)
from pipelines.settings import Settings
from pipelines.store.production_file import read_production_file
from pipelines.trading.positions import target_positions
from pipelines.training.trainer import inference_network


class NoActiveModelError(LookupError):
    """Nothing has been promoted for this model key yet."""


class BarError(ValueError):
    """A bar the predictor cannot use; the message names the field."""


@dataclass
class LivePredictor:
    model_key: str
    params: HyperParams
    scaler: FeatureScaler
    network: torch.nn.Module
    config_version: int | None = None
    model_version: int | None = None
    _bars: dict[str, deque] = field(init=False, repr=False)
    _rows: deque = field(init=False, repr=False)
    _last_bar: pd.Timestamp | None = field(init=False, default=None, repr=False)
    _forward: Callable[[torch.Tensor], torch.Tensor] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.network = inference_network(self.network)
        # a window of standardized features, as live bars give: what the batched pass is checked on
        shape = (1, self.params.seq_len, len(self.scaler.features))
        probe = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        self._forward = live_forward(self.network, probe)
        self.reset()

    @classmethod
    def from_checkpoint(
        cls, directory: Path, sha256: str, params: HyperParams, model_key: str, **versions: int | None
    ) -> LivePredictor:
        """A predictor for a registered checkpoint (hash and feature fingerprint checked)."""
        checkpoint = load_checkpoint(directory, sha256, readable_fingerprints())
        return cls(
            model_key=model_key,
            params=params,
            scaler=FeatureScaler.from_dict(checkpoint.meta["scaler"]),
            network=checkpoint.network,
            **versions,
        )

    @classmethod
    def from_production(cls, settings: Settings, model_key: str | None = None) -> LivePredictor:
        """Load what ``production.yaml`` says is active."""
        models = read_production_file(settings.production_config).get("models", {})
        if not models:
            raise NoActiveModelError(
                f"no active model in {settings.production_config}: run `retune run` (or the DAG) first"
            )
        if model_key is None:
            if len(models) > 1:
                raise ValueError(f"several active models; pass --model-key ({', '.join(models)})")
            model_key = next(iter(models))
        if model_key not in models:
            raise NoActiveModelError(f"no active model for {model_key!r} (active: {', '.join(models)})")
        entry = models[model_key]
        return cls.from_checkpoint(
            Path(entry["checkpoint"]),
            entry["checkpoint_sha256"],
            HyperParams(**entry["params"]),
            model_key,
            config_version=entry["config_version"],
            model_version=entry["model_version"],
        )

    @property
    def bars_needed(self) -> int:
        """Bars before the first prediction: a feature window for each of ``seq_len`` rows."""
        return WARMUP + self.params.seq_len - 1

    def reset(self) -> None:
        self._bars = {col: deque(maxlen=WARMUP) for col in WINDOW_COLUMNS}
        self._rows = deque(maxlen=self.params.seq_len)
        self._last_bar = None

    def update(self, bar: Mapping[str, Any]) -> dict[str, Any] | None:
        """Take the next bar (timestamp + OHLCV); return its signal, or None while warming up."""
        timestamp = _checked_time(bar)
        if self._last_bar is not None and timestamp <= self._last_bar:
            raise BarError(f"bar {timestamp} is not after the previous bar {self._last_bar}")
        values = {col: _checked(bar, col) for col in OHLCV}
        for col, value in values.items():
            self._bars[col].append(value)
        self._bars["timestamp"].append(timestamp.as_unit("ns").value)
        self._last_bar = timestamp
        if len(self._bars["close"]) < WARMUP:
            return None
        features = newest_feature_row(self._bars)
        self._rows.append(self.scaler.transform_rows(features[None])[0])
        if len(self._rows) < self.params.seq_len:
            return None
        return self._signal(timestamp, features)

    def predict_bars(self, bars: pd.DataFrame) -> dict[str, Any]:
        """The signal for the last bar of ``bars`` (which needs at least ``bars_needed`` rows)."""
        if len(bars) < self.bars_needed:
            raise ValueError(f"need at least {self.bars_needed} bars, got {len(bars)}")
        self.reset()
        result = None
        for bar in bars.tail(self.bars_needed).to_dict("records"):
            result = self.update(bar)
        assert result is not None
        return result

    def predict_source(self, spec: str, as_of: str | None = None) -> dict[str, Any]:
        from pipelines.data.sources import load_bars

        return self.predict_bars(load_bars(spec, as_of or None))

    def _signal(self, timestamp: pd.Timestamp, features: np.ndarray) -> dict[str, Any]:
        window = torch.from_numpy(np.stack(self._rows)[None])
        with torch.inference_mode():
            horizons = self._forward(window)[0].reshape(-1).tolist()
        prediction = horizons[0]  # the next bar's: what trades
        # The backtests' own threshold rule, so the position is the one that was scored.
        position = target_positions(
            np.array([self.scaler.signal(prediction)]), [self.params.entry_threshold], self.params.long_short
        )
        return {
            "model_key": self.model_key,
            "bar": str(timestamp),
            "prediction": prediction,
            "expected_return": self.scaler.expected_return(prediction, features[FEATURES.index("vol_20")]),
            "horizon_predictions": horizons,
            "position": int(position[0, 0]),
            "features": dict(zip(FEATURES, features.tolist(), strict=True)),
            "config_version": self.config_version,
            "model_version": self.model_version,
        }


def _checked(bar: Mapping[str, Any], col: str) -> float:
    try:
        value = float(bar[col])
    except KeyError:
        raise BarError(f"bar is missing {col!r}") from None
    except (TypeError, ValueError):
        raise BarError(f"bar {col}={bar[col]!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and col != "volume"):
        raise BarError(f"bar {col}={value} must be finite and {'>= 0' if col == 'volume' else '> 0'}")
    return value


def _checked_time(bar: Mapping[str, Any]) -> pd.Timestamp:
    """The bar's time as naive UTC, like the bars training reads."""
    try:
        timestamp = pd.Timestamp(bar["timestamp"])
    except KeyError:
        raise BarError("bar is missing 'timestamp'") from None
    except (TypeError, ValueError):
        raise BarError(f"bar timestamp={bar['timestamp']!r} is not a time") from None
    if timestamp is pd.NaT:
        raise BarError("bar timestamp is missing (NaT)")
    return timestamp.tz_convert(None) if timestamp.tzinfo is not None else timestamp
