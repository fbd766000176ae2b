"""Training loss stopped falling for ``patience`` epochs: lower the learning rate.

A rate that was right early on makes the optimizer bounce around a minimum later; halving it
once progress stops is the cheapest fix, and waiting ``patience`` epochs after each cut keeps
the rule from firing on every noisy epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.adaptive_training.base import Adaptation, TrainingControl, losses


@dataclass(frozen=True)
class LossStagnationLowersLearningRate:
    name: str = "loss_stagnation_lowers_lr"
    patience: int = 3
    min_improvement: float = 0.01  # relative: 1% below the best before the window
    factor: float = 0.5
    min_lr: float = 1e-6

    def act(self, control: TrainingControl) -> Adaptation | None:
        train = losses(control.history, "train_loss")
        epoch = len(control.history)
        last = control.last_fired(self.name)
        if len(train) <= self.patience or (last is not None and epoch - last < self.patience):
            return None
        before, recent = min(train[: -self.patience]), min(train[-self.patience :])
        if recent < before * (1 - self.min_improvement) or control.schedule.lr * self.factor < self.min_lr:
            return None
        old = control.schedule.lr
        control.schedule.scale(self.factor)
        return Adaptation(
            epoch,
            self.name,
            f"lr {old:.3g} -> {control.schedule.lr:.3g}",
            {
                "best_before": before,
                f"best_last_{self.patience}": recent,
                "min_improvement": self.min_improvement,
            },
        )
