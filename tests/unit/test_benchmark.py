"""Skill, not exposure: the benchmark comparison behind the gate's benchmark checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.promotion.gate import _benchmark_check
from pipelines.search.benchmark import (
    active_returns,
    benchmark_returns,
    compare_to_benchmark,
    held_returns,
    traded_benchmark_returns,
)
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
    assert result.p_value == 0.5 and result.alpha_per_bar == 0.0  # neither skill nor loss
    assert compare_to_benchmark(np.full(100, -1e-4), zeros, "flat").p_value == 1.0  # a certain loss
    with pytest.raises(ValueError, match="not the same bars"):
        compare_to_benchmark(np.zeros(5), np.zeros(6), "flat")


def test_a_model_that_rightly_holds_through_the_holdout_is_its_benchmark_not_a_loser():
    """Found on a planted volatility regime: the holdout was one calm (rising) regime, the model
    rightly stayed long on all 120 bars, and the holdout check refused it (p 0.98): against free
    holding, its only difference was the entry cost at each of the 4 blocks' first close."""
    close = drifting_walk(120, seed=5, drift=0.002)
    costs = Costs(fees=0.0005, slippage=0.0002)
    blocks = [close.iloc[lo : lo + 30] for lo in range(0, 120, 30)]  # positions reset per block
    held = np.concatenate(
        [backtest_with_returns(b, pd.DataFrame({"p": 1}, index=b.index), costs)[1][:, 0] for b in blocks]
    )
    # a model that times the market wrongly: short before every up bar, long before every down one
    wrong = [-np.sign(np.r_[np.diff(b.to_numpy()), 0.0]) for b in blocks]
    loser = np.concatenate(
        [
            backtest_with_returns(b, pd.DataFrame({"p": w.astype(int)}, index=b.index), costs)[1][:, 0]
            for b, w in zip(blocks, wrong, strict=True)
        ]
    )
    free = np.concatenate([held_returns(b.to_numpy()) for b in blocks])
    traded = np.concatenate([traded_benchmark_returns(b, "buy_and_hold", costs, 252) for b in blocks])

    against_free = compare_to_benchmark(held, free, "buy_and_hold", exposure=1.0)
    assert against_free.alpha_per_bar < 0 and against_free.p_value > 0.9  # refused by its costs
    against_traded = compare_to_benchmark(held, traded, "buy_and_hold", exposure=1.0)
    assert against_traded.alpha_per_bar == pytest.approx(0.0, abs=1e-15)
    assert _benchmark_check("beats_benchmark_holdout", against_traded.to_dict(), 0.9).passed
    assert not _benchmark_check("beats_benchmark", against_traded.to_dict(), 0.05).passed  # no skill
    # a model that loses against holding still fails
    losing = compare_to_benchmark(loser, traded, "buy_and_hold", exposure=1.0)
    assert not _benchmark_check("beats_benchmark_holdout", losing.to_dict(), 0.9).passed
