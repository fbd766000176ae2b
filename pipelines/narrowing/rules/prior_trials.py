"""Past studies' best trials say where the learning rate works: tighten around them.

The learning rate is a scale: its top-trial values cluster in logs, so the range becomes their
median ± ``spreads`` standard deviations of log(lr) (plain values for a uniform lr range).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipelines.narrowing.base import Cluster, Evidence, Proposal, rounded
from pipelines.param_specs import FloatRange


@dataclass(frozen=True)
class PriorTopTrialsTightenLearningRate:
    name: str = "prior_top_trials_tighten_learning_rate"
    min_trials: int = 3
    spreads: float = 2.5  # standard deviations kept on each side of the top trials' median

    def propose(self, space, evidence: Evidence) -> list[Proposal]:
        spec = space.get("lr")
        lrs = [float(t["lr"]) for t in evidence.prior_top_trials if _positive(t.get("lr"))]
        if spec is None or len(lrs) < self.min_trials:
            return []
        cluster = Cluster.of(lrs, log=not isinstance(spec, FloatRange) or spec.log)
        target = cluster.target(self.spreads)
        decades = f" ({math.log10(target.high / target.low):.1f} decades)" if target.low > 0 else ""
        return [
            Proposal(
                "lr",
                target,
                f"the top {len(lrs)} prior trials used lr in [{min(lrs):.2g}, {max(lrs):.2g}]; "
                f"search {self.spreads:g} standard deviations around their median{decades}",
                {
                    "n_top_trials": len(lrs),
                    "top_lr_min": rounded(min(lrs)),
                    "top_lr_max": rounded(max(lrs)),
                    **cluster.numbers(),
                },
            )
        ]


def _positive(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf
