"""A previous best on the edge of its range suggests the optimum lies beyond: widen that edge."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipelines.config import FloatRange, IntRange
from pipelines.narrowing.base import Evidence, with_bounds


@dataclass(frozen=True)
class BestOnEdgeWidensRange:
    name: str = "best_on_edge_widens_range"
    edge_fraction: float = 0.05  # within 5% of the span counts as "on the edge"
    widen_fraction: float = 0.5

    def propose(self, space, evidence: Evidence):
        best = evidence.prior_best_params or {}
        out = []
        for param, spec in space.items():
            if not isinstance(spec, FloatRange | IntRange) or param not in best:
                continue
            log = isinstance(spec, FloatRange) and spec.type == "loguniform"
            to, back = (math.log, math.exp) if log else (float, float)
            low, high, value = to(spec.low), to(spec.high), to(best[param])
            span = high - low
            grow = span * self.widen_fraction
            numbers = {"best": best[param], "low": spec.low, "high": spec.high}
            if value >= high - self.edge_fraction * span:
                new, edge = (spec.low, back(high + grow)), "upper"
            elif value <= low + self.edge_fraction * span:
                new, edge = (back(low - grow), spec.high), "lower"
            else:
                continue
            if isinstance(spec, IntRange):
                step = max(spec.step, int(round(grow / spec.step)) * spec.step)
                new = (spec.low, spec.high + step) if edge == "upper" else (spec.low - step, spec.high)
            out.append(
                (
                    param,
                    with_bounds(spec, *new),
                    f"last best {param}={best[param]:.4g} sits on the {edge} edge of "
                    f"[{spec.low:.4g}, {spec.high:.4g}]: widen it",
                    numbers,
                )
            )
        return out
