"""The deployed model did no better than predicting zero, on validation and training alike: add capacity.

Losses are in target-std units, so a best val loss >= 1.0 means nothing was learned. If the train
loss is as high, the network did not even fit what it saw (underfitting, not overfitting): search
no smaller and no more regularized than the deployed model. A clear train/val gap is left to the
overfitting rule, so the two never pull the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.narrowing.base import Evidence, Proposal, at_least, at_most, relative_to_deployed, rounded


@dataclass(frozen=True)
class HighLossAddsCapacity:
    name: str = "high_loss_adds_capacity"
    min_val_loss: float = 1.0  # what predicting zero scores
    max_gap: float = 1.05  # best val loss within 5% of the best train loss: nothing memorized either

    def propose(self, space, evidence: Evidence) -> list[Proposal]:
        diagnostics = evidence.training
        if diagnostics is None:
            return []
        val, train = diagnostics.best_val, diagnostics.min_train
        if val is None or train is None or train <= 0:
            return []
        if val < self.min_val_loss or val / train >= self.max_gap:
            return []
        numbers = {"best_val_loss": rounded(val), "min_train_loss": rounded(train)}
        return relative_to_deployed(
            space,
            evidence,
            (
                ("hidden_size", at_least, "no fewer hidden units"),
                ("num_layers", at_least, "no fewer layers"),
                ("dropout", at_most, "no more dropout"),
            ),
            lambda param, value, wanted: (
                f"the deployed model's best val loss {val:.3g} is >= {self.min_val_loss:g} (no better "
                f"than predicting zero) and its train loss {train:.3g} is as high: it underfits, so "
                f"{wanted} than it ({param}={value:g})"
            ),
            numbers,
        )
