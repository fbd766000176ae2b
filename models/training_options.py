"""Training hyperparameters every family shares: optimizer, weight decay, gradient clipping and
the learning-rate schedule, declared once (typed, bounded) and turned into torch objects here.

The defaults reproduce the trainer before these existed (Adam, no decay, clip 1.0, constant
rate), so configs that set none of them train exactly as before. Naming ``scheduler_patience``
or ``scheduler_factor`` without ``lr_schedule`` means the plateau schedule, which is what users
who write them expect.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from models.families.schema import HyperParam, check_values

OPTIMIZERS = ("Adam", "AdamW", "RMSprop", "SGD")
SCHEDULES = ("none", "plateau", "cosine")

TRAINING_SCHEMA: tuple[HyperParam, ...] = (
    HyperParam("optimizer", str, "Adam", choices=OPTIMIZERS),
    HyperParam("weight_decay", float, 0.0, 0.0, 1.0, doc="L2 (decoupled for AdamW)"),
    HyperParam("momentum", float, 0.9, 0.0, 0.999, doc="SGD and RMSprop momentum"),
    HyperParam("grad_clip", float, 1.0, 0.0, 100.0, doc="max gradient norm per member; 0: off"),
    HyperParam("lr_schedule", str, None, choices=SCHEDULES, doc="unset: plateau if scheduler_* given"),
    HyperParam("scheduler_patience", int, 3, 1, 100, doc="plateau: epochs without improvement"),
    HyperParam("scheduler_factor", float, 0.5, 0.01, 0.99, doc="plateau: lr multiplier"),
    HyperParam("warmup_epochs", int, 0, 0, 100, doc="cosine: linear warm-up epochs"),
    HyperParam("min_lr_ratio", float, 0.0, 0.0, 1.0, doc="cosine: final lr / initial lr"),
)
TRAINING_NAMES = tuple(p.name for p in TRAINING_SCHEMA)


@dataclass(frozen=True)
class TrainingOptions:
    optimizer: str = "Adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    grad_clip: float = 1.0
    lr_schedule: str = "none"
    scheduler_patience: int = 3
    scheduler_factor: float = 0.5
    warmup_epochs: int = 0
    min_lr_ratio: float = 0.0

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> TrainingOptions:
        """The options among ``values`` (other names ignored), checked against the schema."""
        given = check_values(
            "training", TRAINING_SCHEMA, {k: v for k, v in values.items() if k in TRAINING_NAMES}
        )
        if given.get("lr_schedule") is None:
            plateau = "scheduler_patience" in given or "scheduler_factor" in given
            given["lr_schedule"] = "plateau" if plateau else "none"
        return cls(**given)

    def make_optimizer(self, params: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
        params = list(params)
        if self.optimizer == "Adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=self.weight_decay)
        if self.optimizer == "AdamW":
            return torch.optim.AdamW(params, lr=lr, weight_decay=self.weight_decay)
        if self.optimizer == "RMSprop":
            return torch.optim.RMSprop(params, lr=lr, weight_decay=self.weight_decay, momentum=self.momentum)
        return torch.optim.SGD(params, lr=lr, weight_decay=self.weight_decay, momentum=self.momentum)

    def make_schedule(self, optimizer: torch.optim.Optimizer, epochs: int) -> EpochSchedule:
        return EpochSchedule(self, optimizer, epochs)


class EpochSchedule:
    """The learning rate, set once per epoch: plateau lowers it when the monitored loss stops
    improving; cosine warms up linearly, then decays to ``min_lr_ratio`` of the start."""

    def __init__(self, options: TrainingOptions, optimizer: torch.optim.Optimizer, epochs: int):
        self.options, self.optimizer, self.epochs = options, optimizer, epochs
        self.base = [g["lr"] for g in optimizer.param_groups]
        self.plateau = (
            torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, factor=options.scheduler_factor, patience=options.scheduler_patience
            )
            if options.lr_schedule == "plateau"
            else None
        )

    def start_epoch(self, epoch: int) -> None:
        """Before epoch ``epoch`` (1-based): the cosine schedule's rate for it."""
        if self.options.lr_schedule != "cosine":
            return
        warm = self.options.warmup_epochs
        if epoch <= warm:
            factor = epoch / (warm + 1)
        else:
            progress = (epoch - warm - 1) / max(self.epochs - warm - 1, 1)
            floor = self.options.min_lr_ratio
            factor = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        for group, base in zip(self.optimizer.param_groups, self.base, strict=True):
            group["lr"] = base * factor

    def end_epoch(self, monitored_loss: float) -> None:
        if self.plateau is not None:
            self.plateau.step(monitored_loss)

    def scale(self, factor: float) -> None:
        """Multiply the current and base rates (an adaptive rule lowering the learning rate)."""
        self.base = [b * factor for b in self.base]
        for group in self.optimizer.param_groups:
            group["lr"] *= factor

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])
