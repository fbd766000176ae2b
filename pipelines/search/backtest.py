"""Score trading positions with vectorbt: many strategy variants in one vectorized call.

Positions are decided at a bar's close from information up to that bar and executed one
bar later (at the next close), so a backtest never trades on the bar it learned from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# A finite score for trials whose backtest says nothing (no trades, zero variance, NaN):
# Optuna then ranks them last instead of failing or preferring +inf.
PENALTY = {"sharpe": -10.0, "return": -1.0}


@dataclass(frozen=True)
class Costs:
    fees: float = 0.0005
    slippage: float = 0.0


def positions_from_predictions(
    predictions: pd.Series, thresholds: list[float], long_short: bool
) -> pd.DataFrame:
    """One column of target positions (-1, 0, 1) per entry threshold."""
    pred = predictions.to_numpy()[:, None]
    thr = np.asarray(thresholds, dtype=float)[None, :]
    pos = np.where(pred > thr, 1, 0)
    if long_short:
        pos = np.where(pred < -thr, -1, pos)
    return pd.DataFrame(pos, index=predictions.index, columns=pd.Index(thresholds, name="threshold"))


def signals_from_positions(positions: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Entry/exit signals for ``Portfolio.from_signals``, executed one bar after the decision."""
    held = positions.shift(1).fillna(0).astype(int)
    prev = held.shift(1).fillna(0).astype(int)
    return {
        "entries": (held == 1) & (prev != 1),
        "exits": (held == 0) & (prev == 1),
        "short_entries": (held == -1) & (prev != -1),
        "short_exits": (held == 0) & (prev == -1),
    }


def run_portfolio(close: pd.Series, positions: pd.DataFrame, costs: Costs, freq: str = "1D"):
    """The vectorbt portfolio for every column of ``positions`` at once."""
    import vectorbt as vbt

    return vbt.Portfolio.from_signals(
        close,
        **signals_from_positions(positions),
        fees=costs.fees,
        slippage=costs.slippage,
        upon_opposite_entry="reverse",
        init_cash=1.0,
        freq=freq,
    )


def backtest_positions(
    close: pd.Series,
    positions: pd.DataFrame,
    costs: Costs,
    freq: str = "1D",
    year_days: int = 252,
) -> pd.DataFrame:
    """Metrics per positions column: sharpe, total_return, max_drawdown, n_trades, final_value."""
    pf = run_portfolio(close, positions, costs, freq)
    returns = pf.returns()
    acc = returns.vbt.returns(freq=freq, year_freq=f"{year_days} days")
    return pd.DataFrame(
        {
            "sharpe": _as_series(acc.sharpe_ratio(), positions.columns),
            "total_return": _as_series(pf.total_return(), positions.columns),
            "max_drawdown": _as_series(pf.max_drawdown(), positions.columns),
            "n_trades": _as_series(pf.trades.count(), positions.columns),
            "final_value": _as_series(pf.final_value(), positions.columns),
            "return_std": _as_series(returns.std(), positions.columns),
        }
    )


def score(metrics: pd.Series, objective: str, min_trades: int = 1) -> tuple[float, str | None]:
    """The objective value of one backtest, or the finite penalty and the reason for it."""
    key = "sharpe" if objective == "sharpe" else "total_return"
    value = float(metrics[key])
    if metrics["n_trades"] < max(min_trades, 1):
        return PENALTY[objective], f"fewer than {max(min_trades, 1)} trades"
    if not np.isfinite(value):
        return PENALTY[objective], f"{key} is {value}"
    if objective == "sharpe" and not metrics["return_std"] > 0:
        return PENALTY[objective], "returns have zero variance"
    return value, None


def _as_series(values, columns: pd.Index) -> pd.Series:
    if np.isscalar(values):
        return pd.Series([values], index=columns)
    return pd.Series(np.asarray(values), index=columns)
