"""Validation loss stalls on a multi-horizon model: shift loss weight to the next bar.

Far horizons are noisier targets than the next bar, and only the next bar trades; once the
validation loss has not improved for ``patience`` epochs, the far horizons' gradient is more
likely fitting noise than helping the shared representation. Halving their weights (never the
next bar's) lets training spend what is left of its budget on what trades; validation keeps
scoring with the configured weights, so epochs stay comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.adaptive_training.base import Adaptation, TrainingControl, losses


@dataclass(frozen=True)
class StalledLossShiftsWeightToNextBar:
    name: str = "stalled_loss_shifts_weight_to_next_bar"
    patience: int = 3
    min_improvement: float = 0.01
    factor: float = 0.5
    min_far_weight: float = 0.01  # relative to the next bar's

    def act(self, control: TrainingControl) -> Adaptation | None:
        weights = control.loss_weights
        val = losses(control.history, "val_loss")
        epoch = len(control.history)
        last = control.last_fired(self.name)
        if weights is None or len(weights) < 2 or len(val) <= self.patience:
            return None
        if last is not None and epoch - last < self.patience:
            return None
        before, recent = min(val[: -self.patience]), min(val[-self.patience :])
        far = weights[1:] / weights[0]
        if recent < before * (1 - self.min_improvement) or float(far.max()) < self.min_far_weight:
            return None
        old = [round(float(w), 4) for w in weights]
        weights[1:] *= self.factor
        return Adaptation(
            epoch,
            self.name,
            f"horizon weights {old} -> {[round(float(w), 4) for w in weights]}",
            {"best_val_before": before, f"best_val_last_{self.patience}": recent},
        )
