"""The rule interface, the evidence rules read and the targets they propose.

Rules propose ABSOLUTE targets derived from the evidence ("lr at most 3e-4"), never moves relative
to the current range ("cut the top third"): applying the same evidence twice then proposes the same
targets, which is what makes narrowing idempotent. The optimizer turns targets into ranges.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from pipelines.narrowing.diagnostics import TrainingDiagnostics
from pipelines.param_specs import Categorical, FloatRange, IntRange, ParamSpec, is_number


@dataclass(frozen=True)
class Evidence:
    """What the data, past studies and the deployed model say; rules only read this.

    The data part comes from ``data_evidence(bars)``; ``None`` means "not measured" and keeps the
    rules that need it silent.
    """

    n_bars: int
    recent_volatility: float
    long_volatility: float
    recent_bars: int = 63  # returns in the recent window that volatility, trend, autocorrelation use
    trend_tstat: float | None = None  # t-statistic of the mean log return over the recent window
    recent_drift: float | None = None  # mean log return per bar over the recent window
    autocorrelation: float | None = None  # lag-1 autocorrelation of the recent log returns
    prior_top_trials: list[dict[str, Any]] = field(default_factory=list)
    prior_best_params: dict[str, Any] | None = None
    incumbent: dict[str, Any] | None = None
    deployed_params: dict[str, Any] | None = None  # the model a daily run will fine-tune
    pin_architecture: bool = False  # daily runs fine-tune, so they keep its shape
    training: TrainingDiagnostics | None = None  # the deployed model's loss curves
    # the families the search may choose: their declarations bound their own hyperparameters
    # (mamba's d_ff_ratio may be 0, a Transformer's not); empty: every built-in family
    model_families: tuple[str, ...] = ()

    @property
    def volatility_ratio(self) -> float:
        return self.recent_volatility / self.long_volatility if self.long_volatility > 0 else 1.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (the training diagnostics included)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Firing:
    """One rule changing one parameter's range, with the reason and the numbers behind it."""

    rule: str
    param: str
    before: dict[str, Any]
    after: dict[str, Any]
    rationale: str
    evidence: dict[str, Any]


@dataclass(frozen=True)
class Target:
    """The values a rule wants for one parameter, in absolute terms.

    ``narrow``: keep only values in [low, high] (or, for a categorical, in ``choices``);
    ``widen``: extend the range so it reaches [low, high];
    ``pin``: fix the parameter to ``choices``, even if they lie outside its current range.
    """

    kind: Literal["narrow", "widen", "pin"] = "narrow"
    low: float = -math.inf
    high: float = math.inf
    choices: tuple[Any, ...] | None = None


def at_most(high: float) -> Target:
    return Target(high=float(high))


def at_least(low: float) -> Target:
    return Target(low=float(low))


def between(low: float, high: float) -> Target:
    return Target(low=float(low), high=float(high))


def one_of(*choices: Any) -> Target:
    return Target(choices=tuple(choices))


def pin(*values: Any) -> Target:
    return Target(kind="pin", choices=tuple(values))


def widen_to(low: float, high: float) -> Target:
    return Target(kind="widen", low=float(low), high=float(high))


def as_target(proposed: Target | ParamSpec) -> Target:
    """A rule may also propose a spec: its bounds (or choices) are then the absolute target."""
    if isinstance(proposed, Target):
        return proposed
    if isinstance(proposed, Categorical):
        return one_of(*proposed.choices)
    return between(proposed.low, proposed.high)


class Proposal(NamedTuple):
    param: str
    target: Target | ParamSpec
    rationale: str
    evidence: dict[str, Any]


class NarrowingRule(Protocol):
    @property
    def name(self) -> str: ...

    def propose(
        self, space: dict[str, ParamSpec], evidence: Evidence
    ) -> Sequence[tuple[str, Target | ParamSpec, str, dict[str, Any]]]:
        """Absolute targets with a rationale and the numbers behind it; the optimizer applies them.

        A narrowing target must follow from the evidence alone, not from the current range, and is
        proposed whenever the evidence says so, even if the range already satisfies it: the optimizer
        records a firing only when a range actually changes. (Widening may read the range.)
        """
        ...


class Cluster(NamedTuple):
    """Where a set of values clusters: median and sample standard deviation (of logs for scales)."""

    centre: float
    spread: float
    log: bool

    @classmethod
    def of(cls, values: Sequence[float], log: bool) -> Cluster:
        to = math.log if log else float
        points = [to(v) for v in values]
        return cls(statistics.median(points), statistics.stdev(points), log)

    def target(self, spreads: float, at_least: float = 0.0) -> Target:
        """``centre`` ± ``spreads`` spreads, at least ± ``at_least`` (in the spread's units)."""
        half = max(spreads * self.spread, at_least)
        if self.log:
            return between(math.exp(self.centre - half), math.exp(self.centre + half))
        return between(self.centre - half, self.centre + half)

    def numbers(self) -> dict[str, float]:
        """The firing's evidence: centre and spread as values (a spread factor for scales)."""
        if self.log:
            return {
                "top_median": rounded(math.exp(self.centre)),
                "top_spread_factor": rounded(math.exp(self.spread)),
            }
        return {"top_median": rounded(self.centre), "top_spread": rounded(self.spread)}


def describe(spec: ParamSpec) -> dict[str, Any]:
    return spec.model_dump()


def with_bounds(spec: FloatRange | IntRange, low: float, high: float) -> ParamSpec:
    if isinstance(spec, IntRange):
        return spec.model_copy(update={"low": int(low), "high": int(high)})
    return spec.model_copy(update={"low": float(low), "high": float(high)})


def deployed_value(evidence: Evidence, param: str) -> Any:
    """The deployed model's value of ``param``, or None."""
    return (evidence.deployed_params or {}).get(param)


def relative_to_deployed(
    space: dict[str, ParamSpec],
    evidence: Evidence,
    targets: tuple[tuple[str, Callable[[float], Target], str], ...],
    why: Callable[[str, float, str], str],
    numbers: dict[str, Any],
) -> list[Proposal]:
    """Proposals bounding each ``(param, at_least|at_most, wanted)`` by the deployed model's value,
    for the rules that read the deployed model's training diagnostics."""
    out = []
    for param, target, wanted in targets:
        value = deployed_value(evidence, param)
        if param in space and is_number(value):
            out.append(
                Proposal(param, target(value), why(param, value, wanted), {**numbers, "deployed": value})
            )
    return out


def rounded(value: float, digits: int = 4) -> float:
    """A JSON-friendly float for a firing's evidence numbers."""
    return float(f"{float(value):.{digits}g}")
