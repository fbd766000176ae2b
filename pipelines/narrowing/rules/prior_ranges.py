"""Past studies' best trials say where every parameter works: search around where they cluster.

The top-quantile trials of earlier runs (the previous periods) cluster around the optimum of their
period; the range becomes their median ± ``spreads`` sample standard deviations (of logs for
loguniform ranges). A spread-based box follows the cluster rather than its stragglers: one stray
top trial widens a min-max envelope by its whole distance, but the standard deviation only by a
share of it. With 2.5 spreads a slowly moving optimum stays inside (bench/README.md:
``narrowing_trials_ratio``). Categorical choices are left alone: a prior study seldom tries every
choice often enough to rule one out. The target depends on the evidence only, so applying the
rule again changes nothing. The learning rate has its own rule
(``prior_top_trials_tighten_learning_rate``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipelines.narrowing.base import Cluster, Evidence, Proposal
from pipelines.param_specs import FloatRange, IntRange, is_number


@dataclass(frozen=True)
class PriorTopTrialsTightenRanges:
    name: str = "prior_top_trials_tighten_ranges"
    min_trials: int = 5
    spreads: float = 2.5  # standard deviations kept on each side of the top trials' median

    def propose(self, space, evidence: Evidence) -> list[Proposal]:
        out: list[Proposal] = []
        for param, spec in space.items():
            if param == "lr" or not isinstance(spec, FloatRange | IntRange):
                continue
            numbers = (t.get(param) for t in evidence.prior_top_trials)
            values = [float(v) for v in numbers if is_number(v) and math.isfinite(v)]
            if len(values) < self.min_trials:
                continue
            log = isinstance(spec, FloatRange) and spec.log and min(values) > 0
            cluster = Cluster.of(values, log)
            step = spec.step if isinstance(spec, IntRange) else 0.0  # an int range keeps a step each side
            out.append(
                Proposal(
                    param,
                    cluster.target(self.spreads, at_least=step),
                    f"the top {len(values)} prior trials used {param} in "
                    f"[{min(values):.4g}, {max(values):.4g}]; search {self.spreads:g} standard "
                    f"deviations around their median",
                    {"n_top_trials": len(values), **cluster.numbers()},
                )
            )
        return out
