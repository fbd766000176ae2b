"""One narrowing rule per module; ``DEFAULT_RULES`` is the order they are applied in."""

from pipelines.narrowing.rules.deployed_architecture import DeployedArchitectureStaysFixed
from pipelines.narrowing.rules.edge_widening import BestOnEdgeWidensRange
from pipelines.narrowing.rules.prior_trials import PriorTopTrialsTightenLearningRate
from pipelines.narrowing.rules.short_history import ShortHistoryCapsModelSize
from pipelines.narrowing.rules.volatility import VolatilityRegimeShiftsSequenceLength

DEFAULT_RULES = (
    DeployedArchitectureStaysFixed(),
    ShortHistoryCapsModelSize(),
    VolatilityRegimeShiftsSequenceLength(),
    PriorTopTrialsTightenLearningRate(),
    BestOnEdgeWidensRange(),
)

__all__ = ["DEFAULT_RULES"]
