"""Skill, not exposure: the benchmark comparison behind the gate's benchmark checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.search.benchmark import active_returns, benchmark_returns, compare_to_benchmark, held_returns
from pipelines.trading.backtest import Costs, backtest_with_returns


def drifting_walk(n: int, seed: int, drift: float = 0.001, vol: float = 0.01) -> pd.Series:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(drift, vol, n)))
    return pd.Series(close, index=pd.bdate_range("2010-01-04", periods=n))


def backtest(close: pd.Series, positions: np.ndarray) -> np.ndarray:
    frame = pd.DataFrame({"p": positions.astype(int)}, index=close.index)
    return backtest_with_returns(close, frame, Costs(fees=0.0005))[1][:, 0]


def test_held_returns_line_up_with_a_backtest_that_holds_from_the_first_close():
    close = np.array([100.0, 101.0, 99.99, 103.0])
    assert held_returns(close) == pytest.approx([0.0, 0.01, -0.01, 103.0 / 99.99 - 1])
    assert benchmark_returns(close, "flat").tolist() == [0.0] * 4


def test_always_long_on_a_drifting_series_is_exposure_not_skill():
    close = drifting_walk(1000, seed=1, drift=0.002)  # a strong trend: buy-and-hold Sharpe ~3
    returns = backtest(close, np.ones(len(close)))
    result = compare_to_benchmark(returns, held_returns(close.to_numpy()), "buy_and_hold", exposure=1.0)
    assert result.strategy_sharpe * np.sqrt(252) > 2  # a naive gate would promote this
    assert result.beta == pytest.approx(1.0, abs=0.01)
    assert result.alpha_per_bar < 0  # it pays fees and misses the first bar: nothing added
    assert result.p_value > 0.5
    flat = compare_to_benchmark(returns, benchmark_returns(close.to_numpy(), "flat"), "flat")
    assert flat.p_value < 0.01  # against cash the same strategy looks skilled: the benchmark matters


def test_market_timing_keeps_its_edge_against_buy_and_hold():
    """Long-short on a known next-bar sign (an oracle): beta near 0, all of the return is alpha."""
    rng = np.random.default_rng(7)
    r = rng.normal(0.0, 0.01, 800)
    close = pd.Series(100 * np.exp(np.cumsum(r)), index=pd.bdate_range("2010-01-04", periods=800))
    # decided and filled at t's close, a position earns the move to t+1's close
    signs = np.sign(np.r_[close.to_numpy()[1:] / close.to_numpy()[:-1] - 1, 0.0])
    noisy = np.where(rng.random(len(signs)) < 0.35, -signs, signs)  # right 65% of the time
    returns = backtest(close, noisy)
    result = compare_to_benchmark(returns, held_returns(close.to_numpy()), "buy_and_hold")
    assert abs(result.beta) < 0.2
    assert result.alpha_per_bar > 0 and result.p_value < 0.01


def test_active_returns_remove_exposure_exactly():
    bench = np.random.default_rng(3).normal(0, 0.01, 500)
    skill = np.random.default_rng(4).normal(0.001, 0.005, 500)
    active = active_returns(0.6 * bench + skill, bench)
    assert np.corrcoef(active, bench)[0, 1] == pytest.approx(0.0, abs=1e-9)
    assert active.mean() == pytest.approx(skill.mean(), abs=2e-4)  # the skill is what is left


def test_no_variation_is_no_evidence():
    zeros = np.zeros(100)
    result = compare_to_benchmark(zeros, zeros, "flat")
    assert result.p_value == 1.0 and result.alpha_per_bar == 0.0
    with pytest.raises(ValueError, match="not the same bars"):
        compare_to_benchmark(np.zeros(5), np.zeros(6), "flat")
