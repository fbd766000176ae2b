"""No trend and no autocorrelation leave little to predict: trade only strong signals.

With returns indistinguishable from noise, most predictions are noise too, and each trade pays
fees; a higher entry threshold keeps the fewer predictions that stand out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipelines.narrowing.base import Evidence, Proposal, at_least, rounded


@dataclass(frozen=True)
class WeakSignalRaisesEntryThreshold:
    name: str = "weak_signal_raises_entry_threshold"
    max_abs_tstat: float = 1.0  # mean return within one standard error of zero: no trend
    z: float = 1.0  # |rho| within one standard error (1/sqrt(n)) of zero: no autocorrelation
    min_threshold: float = 0.1  # in units of the predictions' spread, like entry_threshold itself
    min_bars: int = 20

    def propose(self, space, evidence: Evidence) -> list[Proposal]:
        t, rho, n = evidence.trend_tstat, evidence.autocorrelation, evidence.recent_bars
        if t is None or rho is None or "entry_threshold" not in space or n < self.min_bars:
            return []
        noise = self.z / math.sqrt(n)
        if abs(t) >= self.max_abs_tstat or abs(rho) >= noise:
            return []
        numbers = {
            "trend_tstat": rounded(t, 3),
            "autocorrelation": rounded(rho, 3),
            "recent_bars": n,
            "noise_level": rounded(noise, 3),
        }
        why = (
            f"the last {n} returns show no trend (t={t:+.2f}, |t| < {self.max_abs_tstat:g}) and no "
            f"lag-1 autocorrelation ({rho:+.2f}, |rho| < {noise:.2f}): little signal, so trade only "
            f"strong predictions: entry_threshold >= {self.min_threshold:g}"
        )
        return [Proposal("entry_threshold", at_least(self.min_threshold), why, numbers)]
