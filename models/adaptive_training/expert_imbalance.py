"""MoE routing collapses onto few experts: raise the load-balancing loss weight.

When one expert takes most tokens the others stop learning and the layer is a dense network
with wasted parameters (Switch Transformer, section 2.2). The balance loss is what counters it;
doubling its weight when the busiest expert's share of the epoch's routed tokens exceeds
``max_share_ratio`` times the even share pushes the router back, and acts on no other family.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.adaptive_training.base import Adaptation, TrainingControl
from models.families.moe import ExpertRouting


@dataclass(frozen=True)
class ExpertImbalanceRaisesBalanceWeight:
    name: str = "expert_imbalance_raises_balance_weight"
    max_share_ratio: float = 2.0
    factor: float = 2.0
    max_weight: float = 1.0

    def act(self, control: TrainingControl) -> Adaptation | None:
        layers = [m for m in control.network.modules() if isinstance(m, ExpertRouting)]
        if not layers:
            return None
        # each epoch is judged on its own routing: counts since the previous epoch (the totals
        # stay for the report); each member's router on its own, grouped or not
        counts = [row.clone() for layer in layers for row in layer.member_counts()]
        previous = control.memory.get(self.name, [torch.zeros_like(c) for c in counts])
        control.memory[self.name] = counts
        usage = [_shares(now - before) for now, before in zip(counts, previous, strict=True)]
        if not all(sum(u) for u in usage):
            return None
        worst = max(max(u) * len(u) for u in usage)
        weight = layers[0].balance_weight
        if worst < self.max_share_ratio or weight >= self.max_weight:
            return None
        new = min(max(weight, 1e-3) * self.factor, self.max_weight)
        for layer in layers:
            layer.balance_weight = new
        return Adaptation(
            len(control.history),
            self.name,
            f"balance_weight {weight:.3g} -> {new:.3g}",
            {"expert_usage": usage, "busiest_over_even": round(worst, 3)},
        )


def _shares(counts: torch.Tensor) -> list[float]:
    total = float(counts.sum())
    return [round(float(c) / total, 4) for c in counts] if total else [0.0] * len(counts)
