"""Past studies' best trials say where every parameter works: search around them.

The top-quantile trials of earlier runs (the previous periods) mark an envelope per parameter;
the range becomes that envelope plus half its width on each side, so a slowly moving optimum
stays inside. Categorical choices are left alone: a prior study seldom tries every choice
often enough to rule one out. The target depends on the evidence only, so applying the rule
again changes nothing. The learning rate has its own rule (``prior_top_trials_tighten_learning_rate``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipelines.config import FloatRange, IntRange
from pipelines.narrowing.base import Evidence, Proposal, between, rounded


@dataclass(frozen=True)
class PriorTopTrialsTightenRanges:
    name: str = "prior_top_trials_tighten_ranges"
    min_trials: int = 5
    margin: float = 0.5  # fraction of the envelope's width added on each side

    def propose(self, space, evidence: Evidence) -> list[Proposal]:
        top = evidence.prior_top_trials
        out: list[Proposal] = []
        for param, spec in space.items():
            if param == "lr":
                continue
            values = [t[param] for t in top if param in t]
            if len(values) < self.min_trials:
                continue
            numeric = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
            if len(numeric) < self.min_trials or not isinstance(spec, FloatRange | IntRange):
                continue
            log = isinstance(spec, FloatRange) and spec.type == "loguniform" and min(numeric) > 0
            to, back = (math.log, math.exp) if log else (float, float)
            low, high = to(min(numeric)), to(max(numeric))
            pad = self.margin * (high - low)
            if isinstance(spec, IntRange):
                pad = max(pad, 1.0)
            target = (back(low - pad), back(high + pad))
            out.append(
                Proposal(
                    param,
                    between(*target),
                    f"the top {len(numeric)} prior trials used {param} in "
                    f"[{min(numeric):.4g}, {max(numeric):.4g}]; search that envelope with a "
                    f"{self.margin:.0%} margin",
                    {
                        "n_top_trials": len(numeric),
                        "top_min": rounded(min(numeric)),
                        "top_max": rounded(max(numeric)),
                    },
                )
            )
        return out
