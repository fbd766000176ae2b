"""A volatility regime change shortens (or lengthens) the useful look-back.

Targets are absolute, in bars of the window the volatility was measured on: after a jump in
volatility a sequence should fit inside the new regime at least twice (seq_len <= window / 2);
in a calm regime each bar carries less signal, so a sequence should average over at least a third
of the window.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.narrowing.base import Evidence, Proposal, at_least, at_most, rounded


@dataclass(frozen=True)
class VolatilityRegimeShiftsSequenceLength:
    name: str = "volatility_regime_shifts_sequence_length"
    high_ratio: float = 1.3
    low_ratio: float = 0.75

    def propose(self, space, evidence: Evidence) -> list[Proposal]:
        if "seq_len" not in space or evidence.recent_bars < 6:
            return []
        ratio = evidence.volatility_ratio
        window = evidence.recent_bars
        numbers = {
            "recent_volatility": rounded(evidence.recent_volatility, 6),
            "long_volatility": rounded(evidence.long_volatility, 6),
            "ratio": rounded(ratio, 3),
            "recent_bars": window,
        }
        if ratio >= self.high_ratio:
            cap = window // 2
            why = (
                f"recent volatility is {ratio:.2f}x the long-run level (last {window} bars): older "
                f"bars describe another regime, so seq_len <= {cap}"
            )
            return [Proposal("seq_len", at_most(cap), why, numbers)]
        if ratio <= self.low_ratio:
            floor = window // 3
            why = (
                f"recent volatility is {ratio:.2f}x the long-run level (last {window} bars): a calm "
                f"regime, each bar carries less signal, so seq_len >= {floor}"
            )
            return [Proposal("seq_len", at_least(floor), why, numbers)]
        return []
