"""Live inference: the active config and model, and the signal for the newest bar.

Uses the very feature code that training uses, on only the trailing bars it needs, so a
trading system can call ``predict_bars`` on each new bar cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from models.checkpoint import load_checkpoint
from pipelines.config import HyperParams
from pipelines.features.core import WARMUP, FeatureScaler, compute_features, feature_fingerprint
from pipelines.promotion.production_file import read_production_file
from pipelines.search.backtest import positions_from_predictions
from pipelines.settings import Settings
from pipelines.training.trainer import predict


class NoActiveModelError(LookupError):
    """Nothing has been promoted for this model key yet."""


@dataclass
class LivePredictor:
    model_key: str
    params: HyperParams
    scaler: FeatureScaler
    network: torch.nn.Module
    config_version: int
    model_version: int

    @classmethod
    def from_production(cls, settings: Settings, model_key: str | None = None) -> LivePredictor:
        """Load what ``production.yaml`` says is active (hash and feature fingerprint checked)."""
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
        checkpoint = load_checkpoint(
            Path(entry["checkpoint"]), entry["checkpoint_sha256"], feature_fingerprint()
        )
        checkpoint.network.eval()
        return cls(
            model_key=model_key,
            params=HyperParams(**entry["params"]),
            scaler=FeatureScaler.from_dict(checkpoint.meta["scaler"]),
            network=checkpoint.network,
            config_version=entry["config_version"],
            model_version=entry["model_version"],
        )

    @property
    def bars_needed(self) -> int:
        return WARMUP + self.params.seq_len - 1

    def predict_bars(self, bars: pd.DataFrame) -> dict[str, Any]:
        """Prediction and target position for the last bar of ``bars`` (needs ``bars_needed``)."""
        if len(bars) < self.bars_needed:
            raise ValueError(f"need at least {self.bars_needed} bars, got {len(bars)}")
        tail = bars.tail(self.bars_needed).reset_index(drop=True)
        scaled = self.scaler.transform(compute_features(tail))[-self.params.seq_len :]
        # The same forward pass and threshold rule the backtests scored: train/serve parity.
        prediction = float(predict(self.network, scaled[None])[0])
        signal = pd.Series([prediction], index=tail["timestamp"].iloc[-1:])
        positions = positions_from_predictions(signal, [self.params.entry_threshold], self.params.long_short)
        position = int(positions.iloc[0, 0])
        return {
            "model_key": self.model_key,
            "bar": str(tail["timestamp"].iloc[-1]),
            "prediction": prediction,
            "expected_return": prediction * self.scaler.target_std,
            "position": position,
            "config_version": self.config_version,
            "model_version": self.model_version,
        }

    def predict_source(self, spec: str, as_of: str | None = None) -> dict[str, Any]:
        from pipelines.data.sources import load_bars

        bars = load_bars(spec, pd.Timestamp(as_of) if as_of else None)
        if bars.isna().any().any() or not np.isfinite(bars.drop(columns="timestamp").to_numpy()).all():
            raise ValueError(f"{spec}: the latest bars contain missing or non-finite values")
        return self.predict_bars(bars)
