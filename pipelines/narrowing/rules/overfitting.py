"""The deployed model fit its training data far better than validation: regularize, shrink.

Targets are the deployed model's own values: search no less dropout and no bigger network than
the one that overfit (the deployed value itself stays, as the incumbent).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.narrowing.base import Evidence, Proposal, at_least, at_most, relative_to_deployed, rounded


@dataclass(frozen=True)
class OverfittingGapAddsRegularization:
    name: str = "overfitting_gap_adds_regularization"
    min_gap: float = 1.25  # best val loss at least 25% above the best train loss

    def propose(self, space, evidence: Evidence) -> list[Proposal]:
        diagnostics = evidence.training
        if diagnostics is None:
            return []
        val, train = diagnostics.best_val, diagnostics.min_train
        if val is None or train is None or train <= 0 or val / train < self.min_gap:
            return []
        gap = val / train
        numbers = {"best_val_loss": rounded(val), "min_train_loss": rounded(train), "gap": rounded(gap, 3)}
        return relative_to_deployed(
            space,
            evidence,
            (
                ("dropout", at_least, "no less dropout"),
                ("hidden_size", at_most, "no more hidden units"),
                ("num_layers", at_most, "no more layers"),
            ),
            lambda param, value, wanted: (
                f"the deployed model's best val loss {val:.3g} is {gap:.2f}x its train loss "
                f"{train:.3g} (>= {self.min_gap:g}): it overfits, so {wanted} than it "
                f"({param}={value:g})"
            ),
            numbers,
        )
