"""Few training bars cannot support a big network: cap hidden size and depth."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.narrowing.base import Evidence, Proposal, at_most


@dataclass(frozen=True)
class ShortHistoryCapsModelSize:
    name: str = "short_history_caps_model_size"
    min_bars_per_unit: int = 50  # training bars wanted per hidden unit
    min_bars_per_extra_layer: int = 1000  # below this, one layer (the optimizer keeps two values)

    def propose(self, space, evidence: Evidence) -> list[Proposal]:
        max_hidden = max(evidence.n_bars // self.min_bars_per_unit, 1)
        numbers = {"n_bars": evidence.n_bars, "max_hidden_size": max_hidden}
        out = []
        if "hidden_size" in space:
            out.append(
                Proposal(
                    "hidden_size",
                    at_most(max_hidden),
                    f"{evidence.n_bars} bars support at most ~{max_hidden} hidden units "
                    f"({self.min_bars_per_unit} bars per unit)",
                    numbers,
                )
            )
        if "num_layers" in space and evidence.n_bars < self.min_bars_per_extra_layer:
            out.append(
                Proposal(
                    "num_layers",
                    at_most(1),
                    f"under {self.min_bars_per_extra_layer} bars ({evidence.n_bars}): favour a single layer",
                    numbers,
                )
            )
        return out
