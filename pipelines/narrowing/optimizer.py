"""DataDrivenOptimizer: apply the rules in order, within hard limits, and record every firing.

Rules only propose. The optimizer keeps each proposal inside the parameter's hard bounds,
no narrower than a minimum width, and wide enough to keep the incumbent (production) value,
so a rule can never rule out the configuration that is trading now.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from annotated_types import Ge, Gt, Le, Lt

from pipelines.config import Categorical, FloatRange, HyperParams, IntRange, ParamSpec
from pipelines.narrowing.base import Evidence, Firing, NarrowingRule, describe, with_bounds
from pipelines.narrowing.rules import DEFAULT_RULES


@dataclass(frozen=True)
class NarrowingResult:
    before: dict[str, ParamSpec]
    after: dict[str, ParamSpec]
    firings: list[Firing]

    def to_dict(self) -> dict[str, Any]:
        return {
            "before": {k: describe(v) for k, v in self.before.items()},
            "after": {k: describe(v) for k, v in self.after.items()},
            "firings": [f.__dict__ for f in self.firings],
        }


def hard_bounds(param: str) -> tuple[float, float]:
    """The widest range a parameter may take, read from HyperParams' own field limits."""
    low, high = -math.inf, math.inf
    for meta in HyperParams.model_fields[param].metadata:
        if isinstance(meta, Ge):
            low = float(meta.ge)  # type: ignore[arg-type]
        if isinstance(meta, Gt):  # open bound: stay strictly inside
            low = float(np.nextafter(float(meta.gt), math.inf))  # type: ignore[arg-type]
        if isinstance(meta, Le):
            high = float(meta.le)  # type: ignore[arg-type]
        if isinstance(meta, Lt):  # open bound: stay strictly inside
            high = float(np.nextafter(float(meta.lt), -math.inf))  # type: ignore[arg-type]
    return low, high


class DataDrivenOptimizer:
    def __init__(self, rules: Sequence[NarrowingRule] = DEFAULT_RULES, min_width: float = 0.1):
        self.rules = list(rules)
        self.min_width = min_width  # fraction of the configured span a float range keeps

    def narrow(self, space: dict[str, ParamSpec], evidence: Evidence) -> NarrowingResult:
        current = dict(space)
        firings: list[Firing] = []
        for rule in self.rules:
            for param, proposed, rationale, numbers in rule.propose(current, evidence):
                bounded = self._enforce(param, space[param], proposed, evidence.incumbent)
                if bounded == current[param]:
                    continue
                firings.append(
                    Firing(rule.name, param, describe(current[param]), describe(bounded), rationale, numbers)
                )
                current[param] = bounded
        return NarrowingResult(before=dict(space), after=current, firings=firings)

    def _enforce(
        self, param: str, original: ParamSpec, proposed: ParamSpec, incumbent: dict | None
    ) -> ParamSpec:
        value = (incumbent or {}).get(param)
        if isinstance(proposed, Categorical):
            if not isinstance(original, Categorical):  # a range pinned to chosen values
                return proposed
            keep = [c for c in original.choices if c in proposed.choices or c == value]
            return proposed.model_copy(update={"choices": tuple(keep or original.choices)})
        assert isinstance(original, FloatRange | IntRange)
        floor, ceiling = hard_bounds(param)
        if isinstance(proposed, FloatRange) and proposed.type == "loguniform":
            floor = max(floor, original.low * 1e-3, np.nextafter(0, 1))
        low, high = max(proposed.low, floor), min(proposed.high, ceiling)
        if value is not None:
            low, high = min(low, value), max(high, value)
        if isinstance(proposed, FloatRange) and isinstance(original, FloatRange):
            low, high = self._min_width(proposed, original, low, high)
            # widening may have pushed an edge past a hard bound: slide the window back inside
            if low < floor:
                low, high = floor, min(high + (floor - low), ceiling)
            if high > ceiling:
                low, high = max(low - (high - ceiling), floor), ceiling
            return with_bounds(proposed, low, high)
        step = original.step if isinstance(original, IntRange) else 1
        low = original.low + math.ceil((low - original.low) / step) * step  # stay on the grid
        high = original.low + math.floor((high - original.low) / step) * step
        if low >= high:  # an int range narrowed to one value
            return Categorical(type="categorical", choices=(int(low),))
        return with_bounds(proposed, low, high)

    def _min_width(self, spec: FloatRange, original: FloatRange, low: float, high: float):
        log = spec.type == "loguniform"
        to, back = (math.log, math.exp) if log else (float, float)
        want = self.min_width * (to(original.high) - to(original.low))
        if to(high) - to(low) >= want:
            return low, high
        mid = (to(low) + to(high)) / 2
        return back(mid - want / 2), back(mid + want / 2)


def data_evidence(bars: pd.DataFrame, recent_bars: int = 63) -> dict[str, Any]:
    """Regime numbers from the bars: history length and recent vs long-run volatility."""
    returns = np.log(bars["close"].to_numpy(dtype=float))
    returns = np.diff(returns)
    return {
        "n_bars": len(bars),
        "recent_volatility": float(np.std(returns[-recent_bars:])) if len(returns) else 0.0,
        "long_volatility": float(np.std(returns)) if len(returns) else 0.0,
    }
