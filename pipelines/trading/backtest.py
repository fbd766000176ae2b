"""Score trading positions with vectorbt: many strategy variants in one vectorized call.

Positions are decided at a bar's close from information up to that bar and filled at that
close (a market-on-close order; ``slippage`` prices the difference), so the position decided
at bar t earns the return from t's close to t+1's close: exactly the next-bar label the model
learns. A position never earns a move it has seen. (Until 2026-12 fills came one bar later,
which traded the return after the one the model predicts: a lag-1 edge was lost entirely.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.calendar import SESSIONS
from pipelines.trading.objectives import OBJECTIVES, ZERO_VARIANCE, few_trades, not_finite

# The bars a year of a run without a calendar (tests, benches on daily equity bars): the xnys
# session's trading days, from the one home of the calendar.
DAILY_EQUITY_BARS = float(SESSIONS["xnys"].days_per_year)


@dataclass(frozen=True)
class Costs:
    fees: float = 0.0005
    slippage: float = 0.0


def signals_from_positions(positions: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Entry/exit signals for ``Portfolio.from_signals``, filled at the decision bar's close."""
    return {
        name: pd.DataFrame(values, index=positions.index, columns=positions.columns, copy=False)
        for name, values in _signal_arrays(positions).items()
    }


def _signal_arrays(positions: pd.DataFrame) -> dict[str, np.ndarray]:
    """``signals_from_positions`` as NumPy arrays: each bar's position against the one held
    before it (the positions shifted down by one bar; flat before the first)."""
    values = positions.to_numpy()
    if not np.isin(values, (-1, 0, 1)).all():
        raise ValueError("positions must be -1 (short), 0 (flat) or 1 (long)")

    def shifted(mask: np.ndarray, periods: int, fill: bool) -> np.ndarray:
        out = np.full(mask.shape, fill, dtype=np.bool_, order="F")
        if len(mask) > periods:
            out[periods:] = mask[: len(mask) - periods]
        return out

    long, short, flat = values == 1, values == -1, values == 0
    prev_long, prev_short = shifted(long, 1, False), shifted(short, 1, False)
    return {
        "entries": np.asfortranarray(long & ~prev_long),
        "exits": np.asfortranarray(flat & prev_long),
        "short_entries": np.asfortranarray(short & ~prev_short),
        "short_exits": np.asfortranarray(flat & prev_short),
    }


def run_portfolio(close: pd.Series, positions: pd.DataFrame, costs: Costs, freq: str | pd.Timedelta = "1D"):
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
    bars_per_year: float = DAILY_EQUITY_BARS,
) -> pd.DataFrame:
    """Metrics per positions column (see ``backtest_with_returns``)."""
    return backtest_with_returns(close, positions, costs, bars_per_year)[0]


def backtest_with_returns(
    close: pd.Series,
    positions: pd.DataFrame,
    costs: Costs,
    bars_per_year: float = DAILY_EQUITY_BARS,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Metrics per positions column and the per-bar strategy returns (bars x columns).

    Metrics: sharpe, sortino, calmar, total_return, max_drawdown, n_trades, final_value,
    return_std. Sharpe, Sortino and Calmar are annualized with ``bars_per_year`` (the run's bar
    calendar, ``pipelines.calendar``): vectorbt's factor ``year_freq / freq`` is computed from a
    pair whose ratio is exactly that (its default, a year of 365 days over a 1-day ``freq``,
    would annualize every bar size as a day).

    Same numbers as reading ``pf.returns()``, ``pf.total_return()``, ``pf.max_drawdown()``,
    ``pf.trades.count()``, ``pf.final_value()`` and
    ``returns.vbt.returns(freq=freq, year_freq=year_freq).sharpe_ratio()`` off the
    portfolio of ``run_portfolio``, but the per-bar series (cash, value, returns, ...) stay NumPy
    arrays fed to vectorbt's own engine functions (``vectorbt.portfolio.dispatch``,
    ``vectorbt.returns.dispatch``, the same ones those methods call) instead of being wrapped into
    a DataFrame at every step; and the benchmark returns, which ``pf.max_drawdown()`` computes
    although nothing here uses them, are not computed at all.
    """
    from vectorbt._settings import settings
    from vectorbt.base.reshape_fns import to_1d_array, to_2d_array
    from vectorbt.portfolio import dispatch as pf_nb
    from vectorbt.portfolio.enums import Direction, TradesType
    from vectorbt.records import dispatch as rec_nb
    from vectorbt.returns import dispatch as ret_nb
    from vectorbt.utils.datetime_ import freq_to_timedelta

    freq, year_freq = _vectorbt_freqs(bars_per_year)
    pf = run_portfolio(close, positions, costs, freq)
    engine = pf.engine
    shape = pf.wrapper.shape_2d
    orders = pf.order_records
    col_map = rec_nb.col_map(orders["col"], shape[1], engine=engine)  # = pf.orders.col_mapper

    # Portfolio.value(): cash + asset value, per column, at each bar.
    prices = prices_raw = to_2d_array(pf.close)
    if pf.fillna_close and np.isnan(prices).any():
        prices = to_2d_array(pf.get_filled_close())
    init_cash = to_1d_array(pf.get_init_cash())
    asset_flow = pf_nb.asset_flow(shape, orders, col_map, Direction.Both, engine=engine)
    assets = pf_nb.assets(asset_flow, engine=engine)
    cash_flow = pf_nb.cash_flow(shape, orders, col_map, False, engine=engine)
    cash = pf_nb.cash(cash_flow, init_cash, engine=engine)
    asset_value = pf_nb.asset_value(np.where(assets == 0, 0.0, prices), assets, engine=engine)
    value = pf_nb.value(cash, asset_value, engine=engine)
    returns = ret_nb.returns(value, init_cash, engine=engine)

    # Portfolio.total_profit() / final_value() / total_return(): from the order records.
    total_profit = pf_nb.total_profit(shape, prices, orders, col_map, engine=engine)

    # Portfolio.trades.count(): exit trades (vectorbt's default trades_type) straight from the
    # order records; any other trades_type goes through the portfolio.
    if pf.trades_type == TradesType.ExitTrades:
        trades = pf_nb.get_exit_trades(orders, prices_raw, col_map, engine=engine)
        n_trades = rec_nb.col_map(trades["col"], shape[1], engine=engine)[1]
    else:
        n_trades = pf.trades.count()

    # ReturnsAccessor.sharpe_ratio(): annualized by year_freq / freq, accessor defaults.
    if pf.wrapper.freq is None:
        raise ValueError(
            "Index frequency is None. Pass it as `freq` or define it globally under `settings.array_wrapper`."
        )
    ann_factor = freq_to_timedelta(year_freq) / pf.wrapper.freq
    defaults = settings["returns"]["defaults"]
    sharpe = ret_nb.sharpe_ratio(returns, ann_factor, defaults["risk_free"], defaults["ddof"], engine=engine)

    sortino = ret_nb.sortino_ratio(returns, ann_factor, 0.0, engine=engine)
    calmar = ret_nb.calmar_ratio(returns, ann_factor, engine=engine)

    # return_std: the same pandas reduction as ``pf.returns().std()`` (sample std, NaN skipped).
    columns = positions.columns
    metrics = pd.DataFrame(
        {
            "sharpe": _as_series(sharpe, columns),
            "sortino": _as_series(sortino, columns),
            "calmar": _as_series(calmar, columns),
            "total_return": _as_series(pf_nb.total_return(total_profit, init_cash, engine=engine), columns),
            "max_drawdown": _as_series(ret_nb.max_drawdown(returns, engine=engine), columns),
            "n_trades": _as_series(n_trades, columns),
            "final_value": _as_series(pf_nb.final_value(total_profit, init_cash, engine=engine), columns),
            "return_std": _as_series(pd.DataFrame(returns).std(), columns),
        }
    )
    return metrics, returns


def score(metrics: pd.Series, objective: str, min_trades: int = 1) -> tuple[float, str | None]:
    """The objective value of one backtest, or the finite penalty and the reason for it."""
    spec = OBJECTIVES[objective]
    value = float(metrics[spec.metric])
    if metrics["n_trades"] < max(min_trades, 1):
        return spec.penalty, few_trades(max(min_trades, 1))
    if not np.isfinite(value):
        return spec.penalty, not_finite(spec.metric, value)
    if spec.needs_variance and not metrics["return_std"] > 0:
        return spec.penalty, ZERO_VARIANCE
    return value, None


def _vectorbt_freqs(bars_per_year: float) -> tuple[pd.Timedelta, pd.Timedelta]:
    """vectorbt's (freq, year_freq) with ``year_freq / freq == bars_per_year`` exactly: a
    nominal 1-minute bar (vectorbt uses freq for annualization only; a bar's real length is
    the calendar's business, and a minute keeps the ratio exact in nanoseconds)."""
    if not bars_per_year > 0:
        raise ValueError(f"bars_per_year must be > 0, not {bars_per_year}")
    bar = pd.Timedelta(minutes=1)
    return bar, bar * bars_per_year


def _as_series(values, columns: pd.Index) -> pd.Series:
    if np.isscalar(values):
        return pd.Series([values], index=columns)
    return pd.Series(np.asarray(values), index=columns)
