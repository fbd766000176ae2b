"""A stalled loss curve says which way the learning rate is wrong.

Validation stalled (flat, or early-stopped with its best at epoch 0-1): if the train loss barely
moved, the steps were too small, so search lr >= the deployed one; if the train loss rose or
oscillated, they were too big, so lr <= the deployed one. A fine-tune starts converged and uses a
scaled lr, so its curve says nothing about the searched lr and is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.narrowing.base import Evidence, Proposal, at_least, at_most, deployed_value, rounded
from pipelines.narrowing.diagnostics import TrainingDiagnostics
from pipelines.param_specs import is_number


@dataclass(frozen=True)
class LossStagnationShiftsLearningRate:
    name: str = "loss_stagnation_shifts_learning_rate"
    tolerance: float = 0.01  # relative loss change that counts as "moved"

    def propose(self, space, evidence: Evidence) -> list[Proposal]:
        diagnostics = evidence.training
        if diagnostics is None or diagnostics.trained_how == "finetune" or "lr" not in space:
            return []
        lr = deployed_value(evidence, "lr")
        lr = lr if is_number(lr) else diagnostics.lr
        train = diagnostics.train_losses
        if lr is None or not 0 < lr < 1 or len(train) < 2 or train[0] <= 0:
            return []
        first, tol = train[0], self.tolerance
        rises = sum(b > a * (1 + tol) for a, b in zip(train, train[1:], strict=False))
        ended_higher = train[-1] > first * (1 + tol)
        oscillating = rises >= 2 and 2 * rises >= len(train) - 1
        flat = all(abs(x - first) <= tol * first for x in train)
        stalled = self._stalled(diagnostics)
        numbers = {
            "lr": rounded(lr),
            "epochs": len(train),
            "first_train_loss": rounded(first),
            "last_train_loss": rounded(train[-1]),
            "train_rises": rises,
            "best_epoch": diagnostics.best_epoch,
            "stopped_early": diagnostics.stopped_early,
        }
        change = (train[-1] - first) / first
        if ended_higher or (stalled and oscillating):
            how = (
                f"rose {change:+.1%} overall"
                if ended_higher
                else f"rose in {rises} of {len(train) - 1} epochs"
            )
            why = f"train loss {how} at lr={lr:.2g}: steps too big, so lr <= {lr:.2g}"
            return [Proposal("lr", at_most(lr), why, numbers)]
        if stalled and flat:
            why = (
                f"validation stalled and train loss moved only {change:+.2%} in {len(train)} epochs at "
                f"lr={lr:.2g}: steps too small, so lr >= {lr:.2g}"
            )
            return [Proposal("lr", at_least(lr), why, numbers)]
        return []

    def _stalled(self, diagnostics: TrainingDiagnostics) -> bool:
        if diagnostics.stopped_early and (diagnostics.best_epoch or 0) <= 1:
            return True
        val = diagnostics.val_losses
        return len(val) >= 2 and max(val) - min(val) <= self.tolerance * abs(min(val))
