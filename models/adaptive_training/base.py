"""Adaptive training: rules that watch a run's per-epoch metrics and act while it trains.

Same style as the narrowing rules: one rule per module, each with its rationale, and every
firing recorded with the numbers that triggered it (kept in the training history, so a
fine-tune's metrics and the report show what was changed and why). Rules act through the
``TrainingControl`` only: the learning rate, weight decay, loss weights, or stopping.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from models.training_options import EpochSchedule


@dataclass(frozen=True)
class Adaptation:
    """One rule acting once: when, what it did, and the evidence."""

    epoch: int
    rule: str
    action: str
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "rule": self.rule, "action": self.action, "evidence": self.evidence}


@dataclass
class TrainingControl:
    """What a rule may read (history, network) and change (rate, decay, loss weights, stop)."""

    network: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: EpochSchedule
    history: list[dict] = field(default_factory=list)
    adaptations: list[Adaptation] = field(default_factory=list)
    stop: bool = False
    memory: dict[str, Any] = field(default_factory=dict)  # per-rule state within one training
    loss_weights: torch.Tensor | None = None  # per-horizon training loss weights

    def last_fired(self, rule: str) -> int | None:
        epochs = [a.epoch for a in self.adaptations if a.rule == rule]
        return max(epochs) if epochs else None

    def set_weight_decay(self, value: float) -> None:
        for group in self.optimizer.param_groups:
            group["weight_decay"] = value

    @property
    def weight_decay(self) -> float:
        return float(self.optimizer.param_groups[0].get("weight_decay", 0.0))


class TrainingRule(Protocol):
    @property
    def name(self) -> str: ...

    def act(self, control: TrainingControl) -> Adaptation | None:
        """After an epoch: change something through ``control`` and say so, or return None."""
        ...


def losses(history: Sequence[dict], key: str) -> list[float]:
    return [float(row[key]) for row in history if row.get(key) is not None]
