"""DataDrivenOptimizer: apply the rules in order, within hard limits, and record every firing.

Rules only propose absolute targets; the optimizer (``limits``) keeps each result inside the
parameter's hard bounds, no narrower than an absolute minimum width, and containing the incumbent
(production) value whenever the range held it, so a rule can never rule out what is trading now.

Idempotent: ``narrow(narrow(S, E).after, E)`` changes nothing and fires nothing. Narrowing targets
depend on the evidence only, and applying one is a projection; widening is clipped to the
"envelope" (hard bounds and every narrowing target proposed for that parameter), so it never undoes
a narrowing that evidence asked for; a pinned parameter takes no other target. Envelopes and pins
are collected before any rule applies, so this holds in any rule order. Passes repeat until one
changes nothing (at most ``max_passes``), so the result is a fixed point even when rules interact
(e.g. widening a range that sat wholly outside a narrowing target).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipelines.narrowing.base import Evidence, Firing, NarrowingRule, Target, as_target, describe
from pipelines.narrowing.limits import Interval, apply, hard_bounds, target_interval
from pipelines.narrowing.regime import data_evidence
from pipelines.narrowing.rules import DEFAULT_RULES
from pipelines.param_specs import ParamSpec

__all__ = ["DataDrivenOptimizer", "NarrowingResult", "data_evidence", "hard_bounds"]


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


class DataDrivenOptimizer:
    def __init__(self, rules: Sequence[NarrowingRule] = DEFAULT_RULES, max_passes: int = 4):
        self.rules = list(rules)
        self.max_passes = max_passes

    def narrow(self, space: dict[str, ParamSpec], evidence: Evidence) -> NarrowingResult:
        current = dict(space)
        families = evidence.model_families
        envelopes = {param: hard_bounds(param, families) for param in space}
        pinned: set[str] = set()
        for rule in self.rules:  # collected up front, so the rule order cannot matter:
            for param, proposed, _, _ in rule.propose(current, evidence):
                target = as_target(proposed)
                self._tighten(envelopes, param, target, families)  # every narrowing target bounds widening
                if target.kind == "pin":  # and a pinned parameter is left to its pin
                    pinned.add(param)
        firings: list[Firing] = []
        for _ in range(self.max_passes):
            changed = False
            for rule in self.rules:
                for param, proposed, rationale, numbers in rule.propose(current, evidence):
                    if param not in current:
                        continue
                    target = as_target(proposed)
                    if param in pinned and target.kind != "pin":
                        continue
                    self._tighten(envelopes, param, target, families)
                    incumbent = (evidence.incumbent or {}).get(param)
                    new = apply(param, current[param], target, envelopes[param], incumbent, families)
                    if new == current[param]:
                        continue
                    firings.append(
                        Firing(rule.name, param, describe(current[param]), describe(new), rationale, numbers)
                    )
                    current[param], changed = new, True
            if not changed:
                break
        return NarrowingResult(before=dict(space), after=current, firings=firings)

    @staticmethod
    def _tighten(
        envelopes: dict[str, Interval], param: str, target: Target, families: tuple[str, ...]
    ) -> None:
        if target.kind != "narrow" or param not in envelopes:
            return
        interval = target_interval(param, target, families)
        if interval is not None:
            low, high = envelopes[param]
            envelopes[param] = (max(low, interval[0]), min(high, interval[1]))
