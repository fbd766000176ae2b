"""Skill, not exposure: what a strategy earns beyond what it could have had for free.

On a trending instrument the best backtest of many is often "hold it": a long position on
almost every bar, with a fine Sharpe and no skill. Every score that decides a promotion is
therefore taken on *active* returns, the strategy's per-bar return less what its exposure to
the benchmark explains:

* ``buy_and_hold`` (default): active_t = r_t - beta * b_t, where b_t is the per-bar return of
  holding the instrument from the block's first close and beta the OLS slope of r on b over the
  same bars. Its mean is the regression intercept (Jensen's alpha): an always-long strategy has
  beta 1 and alpha = minus its costs; a market-timing strategy on a driftless series has beta
  near 0 and keeps all of its return. Subtracting b itself (beta 1) would bury a long-short
  edge under the benchmark's noise.
* ``flat``: the benchmark is cash (b = 0), active = r: for books that are meant to be neutral.

The paired test is a one-sided t-test of the active returns' mean against 0.

On the holdout, where the question is only whether the deployed model loses against holding,
holding is traded as the model is (``traded_benchmark_returns``: bought at each block's first
close, with the same fees and slippage), so a model that rightly stays long through the holdout
is its benchmark, not a loser by its entry costs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import BenchmarkName
from pipelines.search.stats import sharpe_ratio
from pipelines.trading.backtest import Costs, backtest_with_returns


def held_returns(close: np.ndarray) -> np.ndarray:
    """Per-bar returns of holding from the block's first close: 0, c1/c0 - 1, c2/c1 - 1, ...

    Aligned with a backtest of the same block (its first bar has no position yet)."""
    close = np.asarray(close, dtype=float)
    out = np.zeros(len(close))
    if len(close) > 1:
        out[1:] = close[1:] / close[:-1] - 1.0
    return out


def benchmark_returns(close: np.ndarray, benchmark: BenchmarkName) -> np.ndarray:
    """What the benchmark earns per bar on a block of closes."""
    return held_returns(close) if benchmark == "buy_and_hold" else np.zeros(len(close))


def traded_benchmark_returns(
    close: pd.Series, benchmark: BenchmarkName, costs: Costs, bars_per_year: float
) -> np.ndarray:
    """The benchmark's per-bar returns on a block of closes, traded through the same backtest
    as a strategy (a long position from the block's first close, fees and slippage paid)."""
    if benchmark != "buy_and_hold":
        return benchmark_returns(close.to_numpy(), benchmark)  # flat: nothing to trade
    held = pd.DataFrame({"held": np.ones(len(close), dtype=int)}, index=close.index)
    return np.nan_to_num(backtest_with_returns(close, held, costs, bars_per_year)[1][:, 0])


def exposure_beta(strategy: np.ndarray, bench: np.ndarray) -> float:
    """OLS slope of the strategy's returns on the benchmark's (0 when the benchmark is flat)."""
    b = np.asarray(bench, dtype=float)
    var = float(np.var(b))
    if len(b) < 2 or var <= 0.0:
        return 0.0
    r = np.asarray(strategy, dtype=float)
    return float(np.mean((r - r.mean()) * (b - b.mean())) / var)


def active_returns(strategy: np.ndarray, bench: np.ndarray) -> np.ndarray:
    """Per-bar return not explained by exposure to the benchmark (see module doc)."""
    r = np.asarray(strategy, dtype=float)
    return r - exposure_beta(r, bench) * np.asarray(bench, dtype=float)


@dataclass(frozen=True)
class BenchmarkComparison:
    """A strategy against its free benchmark over the same bars, with the paired test."""

    benchmark: BenchmarkName
    n_bars: int
    beta: float
    alpha_per_bar: float  # mean active return
    active_sharpe: float  # per bar
    strategy_sharpe: float  # per bar
    benchmark_sharpe: float  # per bar
    strategy_return: float  # compounded over the bars
    benchmark_return: float
    exposure: float | None  # share of bars with a position, when positions are known
    t_stat: float
    p_value: float  # one-sided: active mean > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_to_benchmark(
    strategy: np.ndarray, bench: np.ndarray, benchmark: BenchmarkName, exposure: float | None = None
) -> BenchmarkComparison:
    """Paired comparison of per-bar strategy returns with the benchmark's on the same bars."""
    from scipy import stats

    r = np.nan_to_num(np.asarray(strategy, dtype=float))
    b = np.nan_to_num(np.asarray(bench, dtype=float))
    if r.shape != b.shape:
        raise ValueError(f"strategy has {r.shape} returns, benchmark {b.shape}: not the same bars")
    beta = exposure_beta(r, b)
    active = r - beta * b
    if len(active) < 3:
        t_stat, p_value = 0.0, 1.0  # too few bars to test anything
    elif np.allclose(active, active[0], atol=1e-15):
        # no variation: the strategy is its benchmark (p 0.5, no evidence either way; a skill
        # test refuses it, a no-loss test lets it pass), or a certain loss
        t_stat, p_value = 0.0, 1.0 if active[0] < -1e-15 else 0.5
    else:
        test = stats.ttest_1samp(active, 0.0, alternative="greater")
        t_stat, p_value = float(test.statistic), float(test.pvalue)
    return BenchmarkComparison(
        benchmark=benchmark,
        n_bars=len(r),
        beta=beta,
        alpha_per_bar=float(active.mean()) if len(active) else 0.0,
        active_sharpe=sharpe_ratio(active),
        strategy_sharpe=sharpe_ratio(r),
        benchmark_sharpe=sharpe_ratio(b),
        strategy_return=float(np.prod(1.0 + r) - 1.0),
        benchmark_return=float(np.prod(1.0 + b) - 1.0),
        exposure=exposure,
        t_stat=t_stat if math.isfinite(t_stat) else 0.0,
        p_value=p_value if math.isfinite(p_value) else 1.0,
    )
