"""One narrowing rule per module; ``DEFAULT_RULES`` is the order they are applied in.

Pins come first (nothing later can move a pinned value), then the data regime, then the deployed
model's training diagnostics, then past studies; widening comes last and never undoes a narrowing.

``OPTIONAL_RULES`` run only when a config names them in ``narrowing_rules``. The autocorrelation
rule is one: on the planted AR(1) series of ``bench/bench_narrowing_trials_ratio.py``, where it
fired (2 of 6), the trials it would cut (seq_len above 20) scored higher on average than those it
kept (+0.25, +0.27) and held the search's best.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipelines.narrowing.base import NarrowingRule
from pipelines.narrowing.rules.autocorrelation import AutocorrelationShortensSequenceLength
from pipelines.narrowing.rules.deployed_architecture import DeployedArchitectureStaysFixed
from pipelines.narrowing.rules.edge_widening import BestOnEdgeWidensRange
from pipelines.narrowing.rules.high_loss import HighLossAddsCapacity
from pipelines.narrowing.rules.loss_stagnation import LossStagnationShiftsLearningRate
from pipelines.narrowing.rules.overfitting import OverfittingGapAddsRegularization
from pipelines.narrowing.rules.prior_ranges import PriorTopTrialsTightenRanges
from pipelines.narrowing.rules.prior_trials import PriorTopTrialsTightenLearningRate
from pipelines.narrowing.rules.short_history import ShortHistoryCapsModelSize
from pipelines.narrowing.rules.trend import StrongTrendPicksTradeSide
from pipelines.narrowing.rules.volatility import VolatilityRegimeShiftsSequenceLength
from pipelines.narrowing.rules.weak_signal import WeakSignalRaisesEntryThreshold

DEFAULT_RULES: tuple[NarrowingRule, ...] = (
    DeployedArchitectureStaysFixed(),
    ShortHistoryCapsModelSize(),
    VolatilityRegimeShiftsSequenceLength(),
    StrongTrendPicksTradeSide(),
    WeakSignalRaisesEntryThreshold(),
    OverfittingGapAddsRegularization(),
    HighLossAddsCapacity(),
    LossStagnationShiftsLearningRate(),
    PriorTopTrialsTightenLearningRate(),
    PriorTopTrialsTightenRanges(),
    BestOnEdgeWidensRange(),
)

OPTIONAL_RULES: tuple[NarrowingRule, ...] = (AutocorrelationShortensSequenceLength(),)

RULES: dict[str, NarrowingRule] = {rule.name: rule for rule in (*DEFAULT_RULES, *OPTIONAL_RULES)}


def rules_by_name(names: Sequence[str]) -> list[NarrowingRule]:
    """The named rules, in the given order (e.g. from the config's ``narrowing_rules``)."""
    if isinstance(names, str):
        raise ValueError(f"narrowing rules: expected a list of rule names, got the string {names!r}")
    unknown = [name for name in names if name not in RULES]
    if unknown:
        raise ValueError(
            f"unknown narrowing rule(s): {', '.join(map(str, unknown))}; known: {', '.join(RULES)}"
        )
    repeated = sorted({name for name in names if list(names).count(name) > 1})
    if repeated:
        raise ValueError(f"narrowing rule(s) listed more than once: {', '.join(repeated)}")
    return [RULES[name] for name in names]


__all__ = ["DEFAULT_RULES", "OPTIONAL_RULES", "RULES", "rules_by_name"]
