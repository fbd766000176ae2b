"""A strong recent trend picks the trade side: no shorts against a rally, no long-only in a slide.

Shorting against a significant positive drift pays the drift on every short bar; in a significant
decline a long-only strategy can at best sit out.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.narrowing.base import Evidence, Proposal, one_of, rounded


@dataclass(frozen=True)
class StrongTrendPicksTradeSide:
    name: str = "strong_trend_picks_trade_side"
    min_tstat: float = 2.0  # mean return two standard errors from zero

    def propose(self, space, evidence: Evidence) -> list[Proposal]:
        t = evidence.trend_tstat
        if t is None or "long_short" not in space or abs(t) < self.min_tstat:
            return []
        numbers = {
            "trend_tstat": rounded(t, 3),
            "recent_drift": rounded(evidence.recent_drift or 0.0, 4),
            "recent_bars": evidence.recent_bars,
        }
        if t > 0:
            why = (
                f"the last {evidence.recent_bars} returns trend up (t={t:+.2f} >= {self.min_tstat:g}): "
                "shorts would pay the drift, so long only"
            )
            return [Proposal("long_short", one_of(False), why, numbers)]
        why = (
            f"the last {evidence.recent_bars} returns trend down (t={t:+.2f} <= -{self.min_tstat:g}): "
            "long-only can at best sit out, so allow shorts"
        )
        return [Proposal("long_short", one_of(True), why, numbers)]
