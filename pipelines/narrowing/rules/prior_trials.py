"""Past studies' best trials say where the learning rate works: tighten around them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipelines.config import FloatRange
from pipelines.narrowing.base import Evidence, Proposal, between, rounded


@dataclass(frozen=True)
class PriorTopTrialsTightenLearningRate:
    name: str = "prior_top_trials_tighten_learning_rate"
    min_trials: int = 3
    margin: float = 2.0  # factor kept on each side of the observed top-trial range

    def propose(self, space, evidence: Evidence) -> list[Proposal]:
        spec = space.get("lr")
        lrs = [float(t["lr"]) for t in evidence.prior_top_trials if _positive(t.get("lr"))]
        if spec is None or len(lrs) < self.min_trials:
            return []
        low, high = min(lrs) / self.margin, max(lrs) * self.margin
        if isinstance(spec, FloatRange) and spec.type == "uniform":
            width = max(lrs) - min(lrs)
            low, high = min(lrs) - width, max(lrs) + width
        numbers = {
            "n_top_trials": len(lrs),
            "top_lr_min": rounded(min(lrs)),
            "top_lr_max": rounded(max(lrs)),
        }
        decades = math.log10(high / low) if low > 0 else float("nan")
        return [
            Proposal(
                "lr",
                between(low, high),
                f"the top {len(lrs)} prior trials used lr in [{min(lrs):.2g}, {max(lrs):.2g}]; "
                f"search {decades:.1f} decades around them",
                numbers,
            )
        ]


def _positive(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf
