"""Few training bars cannot support a big network: cap hidden size and depth."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.config import Categorical, IntRange
from pipelines.narrowing.base import Evidence, with_bounds, with_choices


@dataclass(frozen=True)
class ShortHistoryCapsModelSize:
    name: str = "short_history_caps_model_size"
    min_bars_per_unit: int = 50  # training bars wanted per hidden unit

    def propose(self, space, evidence: Evidence):
        max_hidden = max(evidence.n_bars // self.min_bars_per_unit, 1)
        numbers = {"n_bars": evidence.n_bars, "max_hidden_size": max_hidden}
        out = []
        hidden = space.get("hidden_size")
        if isinstance(hidden, Categorical):
            kept = [c for c in hidden.choices if c <= max_hidden] or [min(hidden.choices)]
            if len(kept) < len(hidden.choices):
                out.append(
                    (
                        "hidden_size",
                        with_choices(hidden, kept),
                        f"{evidence.n_bars} bars support at most ~{max_hidden} hidden units",
                        numbers,
                    )
                )
        elif isinstance(hidden, IntRange) and hidden.high > max_hidden:
            out.append(
                (
                    "hidden_size",
                    with_bounds(hidden, hidden.low, max(max_hidden, hidden.low)),
                    f"{evidence.n_bars} bars support at most ~{max_hidden} hidden units",
                    numbers,
                )
            )
        layers = space.get("num_layers")
        if isinstance(layers, IntRange) and evidence.n_bars < 1000 and layers.high > 1:
            out.append(
                (
                    "num_layers",
                    with_bounds(layers, layers.low, layers.low),
                    f"under 1000 bars ({evidence.n_bars}): a single layer",
                    numbers,
                )
            )
        return out
