"""The promotion gate: named checks with their numbers, and the policy that acts on them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pipelines.context import RunContext
from pipelines.runfolder import EvaluationRecord, GateRecord, SearchRecord
from pipelines.terms import KEPT, Decision
from pipelines.trading.objectives import PENALTY

Policy = Literal["auto", "review", "off"]


@dataclass(frozen=True)
class GateCheck:
    name: str
    value: Any
    threshold: Any
    passed: bool

    def describe(self) -> str:
        """``name value (needs threshold)``, numbers rounded for people."""
        value = f"{self.value:.3g}" if isinstance(self.value, float) else str(self.value)
        return f"{self.name} {value} (needs {self.threshold})"


@dataclass(frozen=True)
class GateResult:
    checks: list[GateCheck]
    policy: Policy

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]

    @property
    def decision(self) -> str:
        """``promote`` (auto), ``awaiting approval`` (review), or ``kept: <why>``."""
        if self.policy == "off":
            return f"{KEPT}promotion is off"
        if not self.passed:
            return f"{KEPT}gate failed ({'; '.join(c.describe() for c in self.checks if not c.passed)})"
        return Decision.PROMOTE.value if self.policy == "auto" else Decision.AWAITING_APPROVAL.value

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateResult:
        return cls(checks=[GateCheck(**c) for c in data["checks"]], policy=data["policy"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "passed": self.passed,
            "decision": self.decision,
            "checks": [asdict(c) for c in self.checks],
        }


def evaluate_gate(
    best_value: float | None,
    objective: str,
    n_complete: int,
    best_trades: float,
    min_trades: int,
    dsr: float | None,
    dsr_threshold: float,
    worst_drawdown: float,
    max_drawdown_limit: float,
    evaluation: dict[str, Any],
    policy: Policy = "review",
    walk_forward_benchmark: dict[str, Any] | None = None,
    benchmark_alpha: float = 0.05,
    holdout_benchmark_alpha: float = 0.9,
) -> GateResult:
    """Checks the search result must pass before its parameters can trade.

    The Deflated Sharpe Ratio check is what stops a lucky winner of many backtests: it is the
    probability that the winner's Sharpe beats what the best of that many skill-less trials
    would show. The benchmark checks ask whether the winner adds anything over what it gets
    for free (buy-and-hold, or flat), paired bar by bar: on its walk-forward folds
    (``walk_forward_benchmark``, from the search) and on the holdout. ``evaluation`` (the
    evaluate step's result) adds the holdout duel with the deployed model and the train/serve
    parity check, which no policy can skip.
    """
    comparison, parity = evaluation["comparison"], evaluation["parity"]
    penalty = PENALTY[objective]
    value_ok = best_value is not None and math.isfinite(best_value) and best_value > penalty
    checks = [
        GateCheck("completed_trials", n_complete, ">= 1", n_complete >= 1),
        GateCheck("best_value_is_real", best_value, f"finite and > penalty {penalty}", value_ok),
        GateCheck("best_value_positive", best_value, "> 0", value_ok and (best_value or 0.0) > 0),
        GateCheck("min_trades", best_trades, f">= {min_trades}", best_trades >= min_trades),
        GateCheck("deflated_sharpe", dsr, f">= {dsr_threshold}", dsr is not None and dsr >= dsr_threshold),
        GateCheck(
            "max_drawdown",
            worst_drawdown,
            f">= -{max_drawdown_limit} (worst fold)",
            worst_drawdown >= -max_drawdown_limit,
        ),
        _benchmark_check("beats_benchmark", walk_forward_benchmark, benchmark_alpha),
        _benchmark_check("beats_benchmark_holdout", evaluation.get("benchmark"), holdout_benchmark_alpha),
        GateCheck("beats_champion", comparison["reason"], "see reason", bool(comparison["challenger_wins"])),
        GateCheck(
            "train_serve_parity",
            max(parity["max_feature_diff"], parity["max_prediction_diff"]),
            f"<= {parity['tolerance']} on {parity['n_bars']} holdout bars, positions equal",
            bool(parity["passed"]),
        ),
    ]
    return GateResult(checks=checks, policy=policy)


def _benchmark_check(name: str, comparison: dict[str, Any] | None, alpha: float) -> GateCheck:
    """The one-sided paired test "alpha over the free benchmark > 0" at level ``alpha`` (a p
    below 0.5 already means a positive alpha; above 0.5, ``alpha`` refuses only an alpha that
    is negative at level 1 - ``alpha``; ``alpha`` = 1 turns the check off)."""
    if comparison is None:
        return GateCheck(name, "no comparable returns", f"p <= {alpha}", alpha >= 1.0)
    p, per_bar = comparison["p_value"], comparison["alpha_per_bar"]
    threshold = f"p <= {alpha} vs {comparison['benchmark']}"
    if 0.5 < alpha < 1.0:
        threshold += f": alpha not below 0 at {1 - alpha:.2g}"
    value = f"p={p:.3f}, alpha/bar {per_bar:+.1e}, beta {comparison['beta']:.2f}"
    return GateCheck(name, value, threshold, p <= alpha)


def gate_for_run(ctx: RunContext, fresh: bool = False) -> GateResult:
    """The run's gate, computed once (by the report step, ``fresh``) and kept in the run folder
    (``gate.json``): promotion acts on the very result the report shows."""
    if ctx.folder.has(GateRecord) and not fresh:
        return GateResult.from_dict(ctx.folder.read(GateRecord).model_dump())
    gate = compute_gate(ctx)
    ctx.folder.write(GateRecord(**gate.to_dict()))
    return gate


def compute_gate(ctx: RunContext) -> GateResult:
    """The gate from the search, evaluation and the config's thresholds."""
    search = ctx.folder.read(SearchRecord)
    folds = search.best_fold_metrics
    return evaluate_gate(
        best_value=search.best_value,
        objective=search.objective,
        n_complete=search.n_complete,
        best_trades=sum(m.get("n_trades", 0) for m in folds),
        min_trades=ctx.config.min_trades,
        dsr=search.dsr,
        dsr_threshold=ctx.config.dsr_threshold,
        worst_drawdown=min((m.get("max_drawdown", 0.0) for m in folds), default=0.0),
        max_drawdown_limit=ctx.config.max_drawdown_limit,
        evaluation=ctx.folder.read(EvaluationRecord).model_dump(),
        policy=ctx.config.promotion_policy,
        walk_forward_benchmark=search.statistics.get("benchmark"),
        benchmark_alpha=ctx.config.benchmark_alpha,
        holdout_benchmark_alpha=ctx.config.holdout_benchmark_alpha,
    )
