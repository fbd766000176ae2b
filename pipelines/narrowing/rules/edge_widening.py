"""A previous best on the edge of its range suggests the optimum lies beyond: widen that edge.

Only when the previous top trials agree: at least ``min_top_trials`` of them, and their median in
the outer ``agree_fraction`` of the span on the best's side. One best is one draw of a noisy score:
on the planted AR(1) series of ``bench/bench_narrowing_trials_ratio.py`` a lone best at the edge
widened the learning rate into the range below 1e-3 that ``bench/learning_rate_scan.py`` measured
to trade noise, and the layer count and dropout past the configured ranges.

Idempotent by construction: the edge moves past the best value by half the best's distance from
the other edge, so afterwards the best sits a third of the span inside and no longer counts as
"on the edge"; a later proposal from a wider range reaches no further, and widening never shrinks.
Where the move is clipped (hard bounds, or a narrowing target from other evidence, which widening
never undoes) the same clipped target comes back and changes nothing. Scales (lr) widen by ratios.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from pipelines.narrowing.base import Evidence, Proposal, widen_to
from pipelines.narrowing.limits import uses_ratio
from pipelines.param_specs import FloatRange, IntRange, is_number


@dataclass(frozen=True)
class BestOnEdgeWidensRange:
    name: str = "best_on_edge_widens_range"
    edge_fraction: float = 0.05  # within 5% of the span (or beyond it) counts as "on the edge"
    widen_fraction: float = 0.5
    min_top_trials: int = 3  # top trials that must back the best before a range widens
    agree_fraction: float = 0.25  # their median must lie in this outer share of the span

    def propose(self, space, evidence: Evidence) -> list[Proposal]:
        best = evidence.prior_best_params or {}
        out = []
        for param, spec in space.items():
            value = best.get(param)
            if not isinstance(spec, FloatRange | IntRange) or not is_number(value):
                continue
            # scales (lr) widen by ratios
            log = isinstance(spec, FloatRange) and uses_ratio(param, spec, evidence.model_families)
            if log and (value <= 0 or spec.low <= 0):
                continue
            to, back = (math.log, math.exp) if log else (float, float)
            low, high, at = to(spec.low), to(spec.high), to(value)
            span = high - low
            top_median, n_top = _top_median(evidence, param, to)
            if n_top < self.min_top_trials:
                continue
            if at >= high - self.edge_fraction * span and top_median >= high - self.agree_fraction * span:
                edge, reach = "upper", at + self.widen_fraction * (at - low)
                new = (spec.low, back(reach))
            elif at <= low + self.edge_fraction * span and top_median <= low + self.agree_fraction * span:
                edge, reach = "lower", at - self.widen_fraction * (high - at)
                new = (back(reach), spec.high)
            else:
                continue
            if isinstance(spec, IntRange):  # whole steps, at least one past the best value
                steps = max(1, math.ceil(abs(reach - at) / spec.step)) * spec.step
                new = (spec.low, value + steps) if edge == "upper" else (value - steps, spec.high)
            out.append(
                Proposal(
                    param,
                    widen_to(*new),
                    f"last best {param}={value:.4g} sits at or past the {edge} edge of "
                    f"[{spec.low:.4g}, {spec.high:.4g}], and the median of the {n_top} top prior "
                    f"trials ({back(top_median):.4g}) in its outer {self.agree_fraction:.0%}: widen it",
                    {
                        "best": value,
                        "low": spec.low,
                        "high": spec.high,
                        "n_top_trials": n_top,
                        "top_median": back(top_median),
                    },
                )
            )
        return out


def _top_median(evidence: Evidence, param: str, to: Callable[[float], float]) -> tuple[float, int]:
    """The median of the prior top trials' values of ``param`` (on the rule's scale), and how many."""
    values = [
        to(float(v))
        for v in (t.get(param) for t in evidence.prior_top_trials)
        if is_number(v) and math.isfinite(v) and (to is float or v > 0)
    ]
    return (statistics.median(values) if values else math.nan), len(values)
