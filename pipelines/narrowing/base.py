"""The rule interface and the evidence rules read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pipelines.config import Categorical, FloatRange, IntRange, ParamSpec


@dataclass(frozen=True)
class Evidence:
    """What the data, past studies and the deployed model say; rules only read this."""

    n_bars: int
    recent_volatility: float
    long_volatility: float
    prior_top_trials: list[dict[str, Any]] = field(default_factory=list)
    prior_best_params: dict[str, Any] | None = None
    incumbent: dict[str, Any] | None = None
    deployed_params: dict[str, Any] | None = None  # the model a daily run will fine-tune
    pin_architecture: bool = False  # daily runs fine-tune, so they keep its shape

    @property
    def volatility_ratio(self) -> float:
        return self.recent_volatility / self.long_volatility if self.long_volatility > 0 else 1.0


@dataclass(frozen=True)
class Firing:
    """One rule changing one parameter's range, with the reason and the numbers behind it."""

    rule: str
    param: str
    before: dict[str, Any]
    after: dict[str, Any]
    rationale: str
    evidence: dict[str, Any]


class NarrowingRule(Protocol):
    @property
    def name(self) -> str: ...

    def propose(
        self, space: dict[str, ParamSpec], evidence: Evidence
    ) -> list[tuple[str, ParamSpec, str, dict[str, Any]]]:
        """Proposed (param, new spec, rationale, numbers); the optimizer enforces the limits."""
        ...


def describe(spec: ParamSpec) -> dict[str, Any]:
    return spec.model_dump()


def with_bounds(spec: FloatRange | IntRange, low: float, high: float) -> ParamSpec:
    if isinstance(spec, IntRange):
        return spec.model_copy(update={"low": int(low), "high": int(high)})
    return spec.model_copy(update={"low": float(low), "high": float(high)})


def with_choices(spec: Categorical, choices: list[Any]) -> ParamSpec:
    return spec.model_copy(update={"choices": tuple(choices)})
