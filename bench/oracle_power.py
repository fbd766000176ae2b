"""How often could a perfect model of a planted edge pass the DSR gate at all?

The oracle (the rule that knows the planted process) needs no search, so its own PSR(0) on the
walk-forward bars is the most any DSR of that series could be. Prints, for each planted
structure at several strengths and walk-forward lengths, the oracle's median annualized Sharpe
through the chain's backtest (with the daily config's fees and slippage unless a row says
otherwise) and on how many of 10 seeds PSR(0) >= 0.95; then how many pass if the oracle had won
a search of ``N_EFFECTIVE`` independent skill-less bets (DSR with SR0 from the null variance
1/T of a Sharpe over T bars, as the chain's gate).

Usage: ``.venv/bin/python bench/oracle_power.py [STRUCTURE ...]`` (default: all of
``TABLE``'s structures).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats as sps

from pipelines.data import synthetic
from pipelines.search.stats import expected_max_sharpe, probabilistic_sharpe_ratio, sharpe_ratio
from pipelines.trading.backtest import Costs, backtest_with_returns

BARS, UNSEEN, HOLDOUT, SEEDS = 3000, 252, 120, 10
N_EFFECTIVE = (12, 25)  # the planted runs' effective trial counts (median, upper quartile)
WALK_FORWARDS = (252, 504, 756, 1008, 2016, 2600)
DAILY_COSTS, NO_COSTS = Costs(0.0005, 0.0002), Costs(0.0, 0.0)

Planted = Callable[[int], tuple[pd.DataFrame, np.ndarray]]  # seed -> (bars, oracle positions)


def ar1(phi: float) -> Planted:
    return lambda seed: _with_oracle(synthetic.ar1(BARS, seed, phi=phi))


def momentum(strength: float) -> Planted:
    return lambda seed: _with_oracle(synthetic.momentum(BARS, seed, strength=strength))


def vol_regime(drift: float) -> Planted:
    """Calm bars drift up by ``drift``, storm bars down by as much (the generator's shape)."""
    return lambda seed: _with_oracle(synthetic.vol_regime(BARS, seed, calm_drift=drift, storm_drift=-drift))


def friday(effect: float) -> Planted:
    """Fridays' mean ``effect``; the oracle is long on the bar before a Friday (the chain fills
    a decision at its own bar's close, so it earns the next bar)."""

    def make(seed: int) -> tuple[pd.DataFrame, np.ndarray]:
        s = synthetic.day_of_week(BARS, seed, effects={4: effect})
        return s.bars, synthetic.weekday_rule(s.bars, s.truth["effects"], lead=1)

    return make


def _with_oracle(series: synthetic.SyntheticSeries) -> tuple[pd.DataFrame, np.ndarray]:
    return series.bars, series.oracle


# structure -> [(strength label, generator, costs)]
TABLE: dict[str, list[tuple[str, Planted, Costs]]] = {
    "ar1": [(f"phi={p:.2f}", ar1(p), DAILY_COSTS) for p in (0.10, 0.15, 0.20, 0.25, 0.30)]
    + [("phi=0.10 no costs", ar1(0.10), NO_COSTS)],
    "momentum": [(f"strength={s:.2f}", momentum(s), DAILY_COSTS) for s in (0.5, 0.7, 0.8, 0.9)],
    "vol_regime": [(f"drift=±{d:.4f}", vol_regime(d), DAILY_COSTS) for d in (0.0012, 0.0016, 0.002, 0.0025)],
    "day_of_week": [(f"friday={e:.4f}", friday(e), DAILY_COSTS) for e in (0.002, 0.004, 0.006, 0.008)],
}


def oracle_psr(returns: np.ndarray, n_effective: float = 1.0) -> float:
    skew, kurtosis = float(sps.skew(returns)), float(sps.kurtosis(returns, fisher=False))
    sr0 = expected_max_sharpe(n_effective, 1.0 / len(returns))
    return probabilistic_sharpe_ratio(sharpe_ratio(returns), sr0, len(returns), skew, kurtosis)


def power_row(planted: Planted, costs: Costs, walk_forward: int) -> str:
    end = BARS - UNSEEN - HOLDOUT
    rows = []
    for seed in range(SEEDS):
        bars, oracle = planted(seed)
        close = pd.Series(bars["close"].to_numpy(), index=pd.DatetimeIndex(bars["timestamp"]))
        positions = pd.DataFrame({"oracle": oracle.astype(int)}, index=close.index)
        part = slice(end - walk_forward, end)
        returns = backtest_with_returns(close.iloc[part], positions.iloc[part], costs)[1][:, 0]
        deflated = [oracle_psr(returns, n) for n in N_EFFECTIVE]
        rows.append((sharpe_ratio(returns) * np.sqrt(252), oracle_psr(returns), *deflated))
    sharpes, psrs, *dsrs = np.array(rows).T
    searched = ", ".join(
        f"N={n}: {int((d >= 0.95).sum())}/{SEEDS}" for n, d in zip(N_EFFECTIVE, dsrs, strict=True)
    )
    return (
        f"walk-forward={walk_forward}: oracle Sharpe median {np.median(sharpes):.2f}, "
        f"PSR(0) >= 0.95 on {int((psrs >= 0.95).sum())}/{SEEDS}; DSR >= 0.95 as a search's winner {searched}"
    )


def main(names: list[str]) -> None:
    unknown = sorted(set(names) - set(TABLE))
    if unknown:
        sys.exit(f"unknown structure {', '.join(unknown)}; known: {', '.join(TABLE)}")
    for name in names or list(TABLE):
        for label, planted, costs in TABLE[name]:
            for walk_forward in WALK_FORWARDS:
                print(f"{name} {label}: {power_row(planted, costs, walk_forward)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
