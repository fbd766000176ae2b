"""The objective registry: what each objective reads from a backtest, its direction, the finite
penalty a degenerate trial gets, and the reasons recorded for it. One definition; the search, the
gate and the selection audit read it here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from pipelines.config import Objective


@dataclass(frozen=True)
class ObjectiveSpec:
    name: str
    metric: str  # the backtest metric column it reads
    # A finite score for trials whose backtest says nothing (no trades, zero variance, NaN):
    # Optuna then ranks them last instead of failing or preferring +inf.
    penalty: float
    needs_variance: bool  # a ratio over the returns' spread: undefined when they do not vary
    direction: Literal["minimize", "maximize"] = "maximize"


OBJECTIVES: dict[str, ObjectiveSpec] = {
    spec.name: spec
    for spec in (
        ObjectiveSpec("sharpe", "sharpe", -10.0, needs_variance=True),
        ObjectiveSpec("return", "total_return", -1.0, needs_variance=False),
        ObjectiveSpec("sortino", "sortino", -10.0, needs_variance=True),
        ObjectiveSpec("calmar", "calmar", -10.0, needs_variance=False),
    )
}
if set(OBJECTIVES) != set(get_args(Objective)):  # the config's Literal names the same objectives
    raise RuntimeError(f"objective registry {sorted(OBJECTIVES)} != config Objective {get_args(Objective)}")

PENALTY = {name: spec.penalty for name, spec in OBJECTIVES.items()}
OBJECTIVE_METRIC = {name: spec.metric for name, spec in OBJECTIVES.items()}


# Why a backtest got the penalty (kept on the trial), and how the selection audit counts them.
def few_trades(minimum: int) -> str:
    return f"fewer than {minimum} trades"


def not_finite(metric: str, value: float) -> str:
    return f"{metric} is {value}"


ZERO_VARIANCE = "returns have zero variance"
PENALTY_MARKERS = {
    "no_trades": ("trades",),
    "nan_value": ("is nan",),
    "infinite_value": ("is inf", "is -inf"),
    "zero_variance": ("zero variance",),
}
