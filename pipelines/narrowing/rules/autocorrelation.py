"""Strong lag-1 autocorrelation means short memory: favour shorter sequences.

When returns depend clearly on the previous bar, the signal sits in the last few bars; a long
window adds inputs (and noise) without adding information.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipelines.narrowing.base import Evidence, Proposal, at_most, rounded


@dataclass(frozen=True)
class AutocorrelationShortensSequenceLength:
    name: str = "autocorrelation_shortens_sequence_length"
    z: float = 2.0  # |rho| above z standard errors (1/sqrt(n)) of white noise counts as strong
    # In bars, not time, whatever the bar calendar: lag-1 autocorrelation is measured between
    # neighbouring bars and decays bar by bar, so a short memory is a few bars of any size
    # (a month of hourly bars, ~500, would be no cap at all). The window it is measured on,
    # ``recent_window``, is a time span.
    max_seq_len: int = 20
    min_bars: int = 20

    def propose(self, space, evidence: Evidence) -> list[Proposal]:
        rho, n = evidence.autocorrelation, evidence.recent_bars
        if rho is None or "seq_len" not in space or n < self.min_bars:
            return []
        threshold = self.z / math.sqrt(n)
        if abs(rho) < threshold:
            return []
        memory = math.ceil(math.log(0.05) / math.log(abs(rho))) if abs(rho) < 1 else n
        numbers = {
            "autocorrelation": rounded(rho, 3),
            "recent_bars": n,
            "threshold": rounded(threshold, 3),
            "memory_bars": memory,
        }
        why = (
            f"lag-1 autocorrelation of the last {n} returns is {rho:+.2f} (|rho| > {threshold:.2f} = "
            f"{self.z:g}/sqrt(n)): it decays below 0.05 within {memory} bars, so the signal is short "
            f"term: seq_len <= {self.max_seq_len}"
        )
        return [Proposal("seq_len", at_most(self.max_seq_len), why, numbers)]
