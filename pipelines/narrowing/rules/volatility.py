"""A volatility regime change shortens (or lengthens) the useful look-back."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.config import IntRange
from pipelines.narrowing.base import Evidence, with_bounds


@dataclass(frozen=True)
class VolatilityRegimeShiftsSequenceLength:
    name: str = "volatility_regime_shifts_sequence_length"
    high_ratio: float = 1.3
    low_ratio: float = 0.75

    def propose(self, space, evidence: Evidence):
        spec = space.get("seq_len")
        if not isinstance(spec, IntRange):
            return []
        ratio = evidence.volatility_ratio
        numbers = {
            "recent_volatility": round(evidence.recent_volatility, 6),
            "long_volatility": round(evidence.long_volatility, 6),
            "ratio": round(ratio, 3),
        }
        span = spec.high - spec.low
        if ratio >= self.high_ratio:
            new_high = spec.high - span // 3
            return [
                (
                    "seq_len",
                    with_bounds(spec, spec.low, new_high),
                    f"recent volatility is {ratio:.2f}x the long-run level: older bars describe "
                    "another regime, so favour shorter sequences",
                    numbers,
                )
            ]
        if ratio <= self.low_ratio:
            new_low = spec.low + span // 3
            return [
                (
                    "seq_len",
                    with_bounds(spec, new_low, spec.high),
                    f"recent volatility is {ratio:.2f}x the long-run level: a calm regime, "
                    "so favour longer sequences",
                    numbers,
                )
            ]
        return []
