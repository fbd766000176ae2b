"""The data part of the evidence: history length and the recent regime of log returns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def data_evidence(bars: pd.DataFrame, recent_bars: int = 63) -> dict[str, Any]:
    """Evidence kwargs from the bars; ``recent_bars`` is the config's ``recent_window`` in bars of
    the run's calendar (a quarter: 63 daily equity bars, 1,560 hourly FX bars).

    Volatility of the recent window against the whole history, and for the recent window the
    t-statistic of the mean return (trend), the mean itself (drift per bar) and the lag-1
    autocorrelation. A number that cannot be measured (too few or constant returns) is None.
    """
    returns = np.diff(np.log(bars["close"].to_numpy(dtype=float)))
    recent = returns[-recent_bars:]
    return {
        "n_bars": len(bars),
        "recent_volatility": float(np.std(recent)) if len(recent) else 0.0,
        "long_volatility": float(np.std(returns)) if len(returns) else 0.0,
        "recent_bars": len(recent),
        "trend_tstat": _tstat(recent),
        "recent_drift": float(np.mean(recent)) if len(recent) else None,
        "autocorrelation": _lag1_autocorrelation(recent),
    }


def _tstat(returns: np.ndarray) -> float | None:
    if len(returns) < 3:
        return None
    sd = float(np.std(returns, ddof=1))
    return float(np.mean(returns) / (sd / np.sqrt(len(returns)))) if sd > 0 else None


def _lag1_autocorrelation(returns: np.ndarray) -> float | None:
    if len(returns) < 3:
        return None
    left, right = returns[:-1] - returns.mean(), returns[1:] - returns.mean()
    denominator = float(np.sum((returns - returns.mean()) ** 2))
    return float(np.sum(left * right) / denominator) if denominator > 0 else None
