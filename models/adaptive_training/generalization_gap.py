"""Validation loss pulls away from training loss: raise weight decay, and stop if that is spent.

A gap that widens for ``patience`` epochs in a row means the network is fitting the noise of
its training windows. Weight decay is the regularizer every family shares (dropout placement
differs by family), so it is what this rule raises; once it is at ``max_decay`` and the gap
still widens, more epochs only overfit more, so training stops (the best epoch is kept).
"""

from __future__ import annotations

from dataclasses import dataclass

from models.adaptive_training.base import Adaptation, TrainingControl


@dataclass(frozen=True)
class WideningGapAddsRegularization:
    name: str = "widening_gap_adds_regularization"
    patience: int = 3
    min_ratio: float = 1.2  # val / train at least this before acting
    start_decay: float = 1e-4
    growth: float = 10.0
    max_decay: float = 1e-2

    def act(self, control: TrainingControl) -> Adaptation | None:
        rows = [r for r in control.history if r.get("val_loss") is not None and r.get("train_loss")]
        epoch = len(control.history)
        last = control.last_fired(self.name)
        if len(rows) <= self.patience or (last is not None and epoch - last < self.patience):
            return None
        ratios = [float(r["val_loss"]) / float(r["train_loss"]) for r in rows[-self.patience - 1 :]]
        widening = all(b > a for a, b in zip(ratios, ratios[1:], strict=False))
        if not widening or ratios[-1] < self.min_ratio:
            return None
        evidence = {"val_over_train": [round(r, 4) for r in ratios], "weight_decay": control.weight_decay}
        if control.weight_decay >= self.max_decay:
            control.stop = True
            return Adaptation(epoch, self.name, "stop: weight decay at its cap", evidence)
        new = min(max(control.weight_decay * self.growth, self.start_decay), self.max_decay)
        action = f"weight_decay {control.weight_decay:.3g} -> {new:.3g}"
        control.set_weight_decay(new)
        return Adaptation(epoch, self.name, action, evidence)
