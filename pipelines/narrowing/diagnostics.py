"""The deployed model's training diagnostics, read from its registry metrics.

Losses are MSE of targets scaled by their training standard deviation, so 1.0 is what predicting
zero scores: a validation loss at or above it means the model learned nothing usable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class TrainingDiagnostics:
    """Per-epoch rows ``{"epoch", "train_loss", "val_loss" (or None), "lr"}`` plus the summary."""

    history: tuple[dict[str, Any], ...] = ()
    best_val_loss: float | None = None
    best_epoch: int | None = None  # 1-based; 0 means validation never improved
    stopped_early: bool = False
    trained_how: str | None = None  # "scratch" or "finetune" (ModelVersion.trained_how)

    @classmethod
    def from_metrics(
        cls, metrics: Mapping[str, Any] | None, trained_how: str | None = None
    ) -> TrainingDiagnostics | None:
        """From ``ModelVersion.metrics`` (best_val_loss, best_epoch, stopped_early, history)."""
        if not metrics:
            return None
        history = tuple(dict(row) for row in metrics.get("history") or () if isinstance(row, Mapping))
        best_epoch = metrics.get("best_epoch")
        return cls(
            history=history,
            best_val_loss=_finite(metrics.get("best_val_loss")),
            best_epoch=int(best_epoch) if isinstance(best_epoch, int | float) else None,
            stopped_early=bool(metrics.get("stopped_early", False)),
            trained_how=trained_how,
        )

    @property
    def train_losses(self) -> list[float]:
        return [v for v in (_finite(row.get("train_loss")) for row in self.history) if v is not None]

    @property
    def val_losses(self) -> list[float]:
        return [v for v in (_finite(row.get("val_loss")) for row in self.history) if v is not None]

    @property
    def best_val(self) -> float | None:
        """The best validation loss: the recorded one, else the history's minimum."""
        if self.best_val_loss is not None:
            return self.best_val_loss
        losses = self.val_losses
        return min(losses) if losses else None

    @property
    def min_train(self) -> float | None:
        losses = self.train_losses
        return min(losses) if losses else None

    @property
    def lr(self) -> float | None:
        """The learning rate the history was trained with (its last row's)."""
        rates = [v for v in (_finite(row.get("lr")) for row in self.history) if v is not None]
        return rates[-1] if rates else None
