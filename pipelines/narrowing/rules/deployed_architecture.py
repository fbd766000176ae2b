"""Daily runs fine-tune the deployed model, so they keep its architecture fixed.

Searching a different hidden size or sequence length would make the fine-tune impossible and
silently turn every daily run into a full retrain; weekly runs are the place to change shape.
A pin is the one target that may leave the configured range: the deployed shape is what it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.narrowing.base import Evidence, Proposal, pin

SHAPE_PARAMS = ("hidden_size", "num_layers", "seq_len")


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
            for param in SHAPE_PARAMS
            if param in space and param in deployed
        ]
