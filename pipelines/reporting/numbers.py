"""Numbers as people read them, in the report, the review request and the Retune page."""

from __future__ import annotations

from typing import Any


def for_people(value: Any, digits: int = 4) -> Any:
    """A float to ``digits`` significant digits, and values within 1e-9 of 0 as 0 (a Sharpe
    of ``8.3e-17`` is 0); anything else unchanged."""
    if isinstance(value, bool) or not isinstance(value, float):
        return value
    if abs(value) < 1e-9:
        return 0
    return float(f"{value:.{digits}g}")
