"""Adaptive training rules by name (config ``adaptive_rules``), one per module."""

from __future__ import annotations

from collections.abc import Sequence

from models.adaptive_training.base import Adaptation, TrainingControl, TrainingRule
from models.adaptive_training.expert_imbalance import ExpertImbalanceRaisesBalanceWeight
from models.adaptive_training.generalization_gap import WideningGapAddsRegularization
from models.adaptive_training.horizon_weights import StalledLossShiftsWeightToNextBar
from models.adaptive_training.loss_stagnation import LossStagnationLowersLearningRate

DEFAULT_ADAPTIVE_RULES: tuple[TrainingRule, ...] = (
    LossStagnationLowersLearningRate(),
    WideningGapAddsRegularization(),
    StalledLossShiftsWeightToNextBar(),
    ExpertImbalanceRaisesBalanceWeight(),
)
ADAPTIVE_RULES: dict[str, TrainingRule] = {rule.name: rule for rule in DEFAULT_ADAPTIVE_RULES}


def adaptive_rules(names: Sequence[str]) -> list[TrainingRule]:
    """The named rules, in order; an unknown name is refused with the known ones."""
    unknown = [n for n in names if n not in ADAPTIVE_RULES]
    if unknown:
        raise ValueError(
            f"unknown adaptive rule(s): {', '.join(unknown)}; known: {', '.join(ADAPTIVE_RULES)}"
        )
    return [ADAPTIVE_RULES[n] for n in names]


__all__ = ["ADAPTIVE_RULES", "Adaptation", "TrainingControl", "TrainingRule", "adaptive_rules"]
