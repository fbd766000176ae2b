"""annualization_error: our annualized Sharpe against an independent computation, per calendar.

Arm A (ours, the production path): the bar calendar is inferred from the bars' timestamps
(``PipelineConfig.annualization``: bar frequency and session, nothing set in the config) and
the strategy is scored by ``pipelines.trading.backtest.backtest_with_returns`` (vectorbt).
Arm B (independent, plain numpy): per-bar strategy returns from the closes (a position held
from bar t-1's close to bar t's earns close[t] / close[t-1] - 1; no costs), their mean over
their sample standard deviation, × sqrt(bars a year) where bars a year is written out from the
calendar's definition here, not read from ``pipelines.calendar``: 252 sessions for daily
equity, 24 h × 5 days × 52 weeks for hourly FX, (6.5 h / 15 min) × 252 sessions for 15-minute
NYSE bars, 365 days for daily crypto.

``value``: the largest relative difference |A - B| / |B| over the four calendars. ``details``
per calendar: both Sharpes, both bars-a-year counts, what was inferred, and what the code before
the calendar reported (every bar size annualized as a 252-day year of daily bars).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipelines.config_files import parse_config
from pipelines.trading.backtest import Costs, backtest_with_returns

NAME = "annualization_error"
SEED = 16


def _daily_equity() -> pd.DatetimeIndex:
    return pd.bdate_range("2015-01-02", periods=2000)


def _hourly_fx() -> pd.DatetimeIndex:
    hours = pd.date_range("2023-01-02", periods=8000, freq="h")
    return hours[hours.day_of_week < 5][:5000]


def _equity_15min() -> pd.DatetimeIndex:
    sessions = pd.bdate_range("2024-01-02", periods=200)
    opens = pd.DatetimeIndex([pd.Timestamp(f"{d:%Y-%m-%d} 09:30", tz="America/New_York") for d in sessions])
    return pd.DatetimeIndex([o + pd.Timedelta(minutes=15 * k) for o in opens for k in range(26)])


def _daily_crypto() -> pd.DatetimeIndex:
    return pd.date_range("2019-01-01", periods=2000, freq="D")


# name -> (timestamps, bars a year from the calendar's definition, written out independently)
CALENDARS = {
    "daily_equity": (_daily_equity, 252),
    "hourly_fx": (_hourly_fx, 24 * 5 * 52),
    "equity_15min_session": (_equity_15min, (6.5 * 60 / 15) * 252),
    "daily_crypto": (_daily_crypto, 365),
}


def _series(stamps: pd.DatetimeIndex, seed: int) -> tuple[pd.Series, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0002, 0.004, len(stamps))))
    # long or flat, held for a few bars at a time
    position = (np.cumsum(rng.random(len(stamps)) < 0.2) % 2).astype(int)
    return pd.Series(close, index=stamps.tz_convert(None) if stamps.tz else stamps), position


def _independent_sharpe(close: np.ndarray, position: np.ndarray, bars_per_year: float) -> float:
    returns = np.zeros(len(close))
    returns[1:] = position[:-1] * (close[1:] / close[:-1] - 1.0)
    return float(returns.mean() / returns.std(ddof=1) * math.sqrt(bars_per_year))


def run() -> dict:
    config = parse_config({})  # no calendar settings: everything is inferred from the bars
    details: dict[str, dict] = {}
    for k, (name, (make, independent_bars)) in enumerate(CALENDARS.items()):
        stamps = make()
        close, position = _series(stamps, SEED + k)
        calendar = config.calendar(close.index)
        positions = pd.DataFrame({0.0: position}, index=close.index)
        metrics, _ = backtest_with_returns(
            close, positions, Costs(0.0, 0.0), config.annualization(close.index)
        )
        ours = float(metrics.iloc[0]["sharpe"])
        theirs = _independent_sharpe(close.to_numpy(), position, independent_bars)
        details[name] = {
            "ours": ours,
            "independent": theirs,
            "rel_error": abs(ours - theirs) / abs(theirs),
            "bars_per_year_ours": calendar.bars_per_year,
            "bars_per_year_independent": independent_bars,
            "inferred": calendar.describe(),
            "n_bars": len(close),
            "before_calendar": theirs * math.sqrt(252 / independent_bars),  # x sqrt(252) whatever the bar
        }
    value = max(d["rel_error"] for d in details.values())
    return {
        "value": value,
        "unit": "relative error",
        "goal": "= 0 within 1e-9 relative",
        "details": {
            **details,
            "strategy": "long or flat, switching with probability 0.2 a bar; no fees or slippage",
            "independent": "numpy: mean / std(ddof=1) of close-to-close strategy returns x sqrt(bars a year "
            "from the calendar definition)",
        },
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
