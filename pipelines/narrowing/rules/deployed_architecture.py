"""Daily runs fine-tune the deployed model, so they keep its architecture fixed.

Searching a different hidden size or sequence length would make the fine-tune impossible and
silently turn every daily run into a full retrain; weekly runs are the place to change shape.
A pin is the one target that may leave the configured range: the deployed shape is what it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.families import get_family
from pipelines.narrowing.base import Evidence, Proposal, pin


def shape_params(deployed: dict) -> tuple[str, ...]:
    """What fixes the deployed model's weight shapes: its family's declaration."""
    return get_family(deployed.get("model_family", "lstm")).shape_params


@dataclass(frozen=True)
class DeployedArchitectureStaysFixed:
    name: str = "deployed_architecture_stays_fixed"

    def propose(self, space, evidence: Evidence) -> list[Proposal]:
        deployed = evidence.deployed_params
        if not evidence.pin_architecture or not deployed:
            return []
        return [
            Proposal(
                param,
                pin(deployed[param]),
                f"daily run fine-tunes the deployed model: keep {param}={deployed[param]}",
                {"deployed": deployed[param]},
            )
            for param in shape_params(deployed)
            if param in space and param in deployed
        ]
