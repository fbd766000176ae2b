"""pipelines.trading.backtest: penalties, one-bar execution delay, fees and annualization."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipelines.trading.backtest import (
    Costs,
    backtest_positions,
    backtest_with_returns,
    run_portfolio,
    score,
    signals_from_positions,
)
from pipelines.trading.objectives import PENALTY
from pipelines.trading.positions import positions_from_predictions

NO_COSTS = Costs(fees=0.0, slippage=0.0)


def _index(n: int) -> pd.DatetimeIndex:
    return pd.bdate_range("2021-01-01", periods=n)


def _positions(values, index) -> pd.DataFrame:
    return pd.DataFrame({0.0: np.asarray(values, dtype=int)}, index=index)


def _rising(n: int = 60) -> pd.Series:
    return pd.Series(np.linspace(100.0, 160.0, n) * (1 + 0.002 * np.sin(np.arange(n))), index=_index(n))


@pytest.mark.parametrize("objective", ["sharpe", "return"])
def test_no_trades_get_the_finite_penalty_with_a_reason(objective):
    close = _rising()
    metrics = backtest_positions(close, _positions(np.zeros(len(close)), close.index), Costs()).iloc[0]
    assert metrics["n_trades"] == 0
    value, reason = score(metrics, objective)
    assert value == PENALTY[objective]
    assert math.isfinite(value)
    assert reason and "trades" in reason


def test_always_long_on_a_rising_series():
    close = _rising()
    metrics = backtest_positions(close, _positions(np.ones(len(close)), close.index), Costs()).iloc[0]
    assert metrics["total_return"] > 0
    assert metrics["n_trades"] >= 1
    assert metrics["final_value"] > 1.0
    value, reason = score(metrics, "return")
    assert reason is None and value == pytest.approx(metrics["total_return"])
    sharpe, reason = score(metrics, "sharpe")
    assert reason is None and math.isfinite(sharpe) and sharpe > 0


def test_fees_reduce_final_value():
    close = _rising()
    pos = _positions(np.tile([1, 1, 0, 0], len(close) // 4), close.index)
    free = backtest_positions(close, pos, NO_COSTS).iloc[0]
    costly = backtest_positions(close, pos, Costs(fees=0.01)).iloc[0]
    slipped = backtest_positions(close, pos, Costs(fees=0.0, slippage=0.01)).iloc[0]
    assert costly["n_trades"] == free["n_trades"] > 1
    assert costly["final_value"] < free["final_value"]
    assert slipped["final_value"] < free["final_value"]


def test_signals_fire_on_the_decision_bar():
    index = _index(8)
    pos = _positions([0, 1, 1, 0, -1, -1, 0, 0], index)
    sig = signals_from_positions(pos)
    col = 0.0
    assert list(np.flatnonzero(sig["entries"][col])) == [1]
    assert list(np.flatnonzero(sig["exits"][col])) == [3]
    assert list(np.flatnonzero(sig["short_entries"][col])) == [4]
    assert list(np.flatnonzero(sig["short_exits"][col])) == [6]


def test_orders_fill_at_the_decision_bars_close():
    close = pd.Series([10.0, 11, 12, 13, 14, 15, 16, 17], index=_index(8))
    pos = _positions([0, 1, 1, 1, 0, 0, 0, 0], close.index)
    orders = run_portfolio(close, pos, NO_COSTS).orders.records_readable
    assert list(orders["Timestamp"]) == [close.index[1], close.index[4]]
    assert list(orders["Price"]) == [11.0, 14.0]


def test_a_position_earns_the_next_bars_move_and_never_one_it_has_seen():
    # Close jumps 100 -> 200 at bar 5. Deciding "long" at bar 5 (after seeing the jump) must not
    # earn it; a decision at bar 4 (before the jump, filled at its close) holds through it: the
    # return from t's close to t+1's close is what the model's next-bar label is.
    close = pd.Series([100.0] * 5 + [200.0] * 5, index=_index(10))
    for decided, expected in ((5, 0.0), (4, 1.0), (3, 1.0)):
        values = np.zeros(10)
        values[decided : decided + 3] = 1
        metrics = backtest_positions(close, _positions(values, close.index), NO_COSTS).iloc[0]
        assert metrics["total_return"] == pytest.approx(expected), f"decided at bar {decided}"


def test_many_thresholds_in_one_call():
    close = _rising(40)
    preds = pd.Series(np.linspace(-1, 1, 40), index=close.index)
    pos = positions_from_predictions(preds, [0.0, 0.5, 2.0], long_short=False)
    assert list(pos.columns) == [0.0, 0.5, 2.0]
    metrics = backtest_positions(close, pos, NO_COSTS)
    assert list(metrics.index) == [0.0, 0.5, 2.0]
    assert metrics.loc[2.0, "n_trades"] == 0
    assert metrics.loc[0.0, "n_trades"] >= 1


def test_positions_from_predictions_long_short():
    preds = pd.Series([-0.3, -0.05, 0.0, 0.05, 0.3], index=_index(5))
    long_only = positions_from_predictions(preds, [0.1], long_short=False).iloc[:, 0]
    both = positions_from_predictions(preds, [0.1], long_short=True).iloc[:, 0]
    assert list(long_only) == [0, 0, 0, 0, 1]
    assert list(both) == [-1, 0, 0, 0, 1]


def test_year_length_scales_sharpe():
    close = _rising()
    pos = _positions(np.ones(len(close)), close.index)
    s252 = backtest_positions(close, pos, NO_COSTS, bars_per_year=252).iloc[0]["sharpe"]
    s365 = backtest_positions(close, pos, NO_COSTS, bars_per_year=365).iloc[0]["sharpe"]
    assert s365 / s252 == pytest.approx(math.sqrt(365 / 252), rel=1e-9)


def test_hourly_bars_are_annualized_by_bars_a_year_not_days(make_bars):
    """5,000 hourly FX bars: Sharpe = per-bar mean / std x sqrt(6240), not x sqrt(252)."""
    bars = make_bars(500, seed=4)
    index = pd.date_range("2024-01-01", periods=len(bars), freq="h")
    close = pd.Series(bars["close"].to_numpy(), index=index)
    positions = _positions(np.random.default_rng(4).integers(0, 2, len(close)), index)
    metrics, returns = backtest_with_returns(close, positions, NO_COSTS, bars_per_year=6240)
    per_bar = returns[:, 0]
    expected = per_bar.mean() / per_bar.std(ddof=1) * math.sqrt(6240)
    assert metrics.iloc[0]["sharpe"] == pytest.approx(expected, rel=1e-9)
    # vectorbt's own accessor agrees when freq and year_freq come from the same calendar
    accessor = pd.Series(per_bar, index=index).vbt.returns(freq="1h", year_freq=pd.Timedelta(hours=6240))
    assert metrics.iloc[0]["sharpe"] == pytest.approx(accessor.sharpe_ratio(), rel=1e-9)
    assert metrics.iloc[0]["sortino"] == pytest.approx(accessor.sortino_ratio(), rel=1e-9)
    assert metrics.iloc[0]["calmar"] == pytest.approx(accessor.calmar_ratio(), rel=1e-9)


@pytest.mark.parametrize(
    ("metrics", "objective", "fragment"),
    [
        ({"sharpe": math.inf, "total_return": 0.1, "n_trades": 3, "return_std": 0.0}, "sharpe", "inf"),
        ({"sharpe": math.nan, "total_return": 0.1, "n_trades": 3, "return_std": 0.01}, "sharpe", "nan"),
        ({"sharpe": 1.2, "total_return": 0.1, "n_trades": 3, "return_std": 0.0}, "sharpe", "zero variance"),
        ({"sharpe": 1.2, "total_return": math.nan, "n_trades": 3, "return_std": 0.01}, "return", "nan"),
        ({"sharpe": 1.2, "total_return": 0.1, "n_trades": 2, "return_std": 0.01}, "return", "3 trades"),
        ({"sortino": math.inf, "n_trades": 3, "return_std": 0.01}, "sortino", "inf"),
        ({"sortino": 2.0, "n_trades": 3, "return_std": 0.0}, "sortino", "zero variance"),
        ({"calmar": math.inf, "n_trades": 3, "return_std": 0.01}, "calmar", "inf"),
    ],
)
def test_score_penalizes_meaningless_results(metrics, objective, fragment):
    value, reason = score(pd.Series(metrics), objective, min_trades=3 if "3 trades" in fragment else 1)
    assert value == PENALTY[objective]
    assert fragment in reason


def test_metrics_match_the_plain_vectorbt_portfolio(make_bars):
    """The fast metric path must give the numbers vectorbt's Portfolio methods give."""
    bars = make_bars(120, seed=9)
    close = pd.Series(bars["close"].to_numpy(), index=pd.DatetimeIndex(bars["timestamp"]))
    preds = pd.Series(np.random.default_rng(9).normal(0, 1, len(close)), index=close.index)
    pos = positions_from_predictions(preds, [0.0, 0.5, 3.0], long_short=True)
    costs = Costs(fees=0.001, slippage=0.0005)
    fast, fast_returns = backtest_with_returns(close, pos, costs, bars_per_year=252)
    pf = run_portfolio(close, pos, costs)
    np.testing.assert_allclose(fast_returns, pf.returns().to_numpy(), rtol=1e-12, atol=1e-15)
    returns = pf.returns()
    slow = pd.DataFrame(
        {
            "sharpe": returns.vbt.returns(freq="1D", year_freq="252 days").sharpe_ratio(),
            "sortino": returns.vbt.returns(freq="1D", year_freq="252 days").sortino_ratio(),
            "calmar": returns.vbt.returns(freq="1D", year_freq="252 days").calmar_ratio(),
            "total_return": pf.total_return(),
            "max_drawdown": pf.max_drawdown(),
            "n_trades": pf.trades.count(),
            "final_value": pf.final_value(),
            "return_std": returns.std(),
        }
    )
    assert fast.loc[3.0, "n_trades"] == 0 and fast.loc[0.0, "n_trades"] > 5
    for column in slow.columns:
        np.testing.assert_allclose(
            fast[column].to_numpy(dtype=float),
            slow[column].to_numpy(dtype=float),
            rtol=1e-10,
            atol=1e-12,
            equal_nan=True,
            err_msg=column,
        )


def test_backtests_run_on_vectorbt_rust_kernels_without_numba_compiling(make_bars):
    """Every task process would otherwise JIT-compile the simulation (~15 s each, twice a run)."""
    from vectorbt.portfolio.nb import simulate_from_signals_nb

    bars = make_bars(80, seed=3)
    close = pd.Series(bars["close"].to_numpy(), index=pd.DatetimeIndex(bars["timestamp"]))
    preds = pd.Series(np.random.default_rng(3).normal(0, 1, len(close)), index=close.index)
    for long_short in (False, True):
        metrics, _ = backtest_with_returns(
            close, positions_from_predictions(preds, [0.0, 0.5], long_short), Costs()
        )
        assert (metrics["n_trades"] > 0).all()
    assert simulate_from_signals_nb.signatures == []
