"""How often could a perfect model of a planted AR(1) edge pass the DSR gate at all?

The oracle (position = sign of today's return) needs no search, so its own PSR(0) on the
walk-forward bars is the most any DSR of that series could be. Prints, for several phi and
walk-forward lengths, the oracle's median annualized Sharpe through the chain's backtest (fees
and slippage of the daily config, or none) and on how many of 10 seeds PSR(0) >= 0.95; then
how many pass if the oracle had won a search of ``N_EFFECTIVE`` independent skill-less bets
(DSR with SR0 from the null variance 1/T of a Sharpe over T bars, as the chain's gate).

Usage: ``.venv/bin/python bench/oracle_power.py``
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from pipelines.data.synthetic import ar1, ar1_rule
from pipelines.search.stats import expected_max_sharpe, probabilistic_sharpe_ratio, sharpe_ratio
from pipelines.trading.backtest import Costs, backtest_with_returns

BARS, UNSEEN, HOLDOUT = 3000, 252, 120
N_EFFECTIVE = (12, 25)  # the planted runs' effective trial counts (median, upper quartile)


def oracle_psr(returns: np.ndarray, n_effective: float = 1.0) -> float:
    skew, kurtosis = float(sps.skew(returns)), float(sps.kurtosis(returns, fisher=False))
    sr0 = expected_max_sharpe(n_effective, 1.0 / len(returns))
    return probabilistic_sharpe_ratio(sharpe_ratio(returns), sr0, len(returns), skew, kurtosis)


def main() -> None:
    end = BARS - UNSEEN - HOLDOUT
    for phi, costs in [
        (0.10, Costs(0.0005, 0.0002)),
        (0.10, Costs(0.0, 0.0)),
        (0.15, Costs(0.0005, 0.0002)),
        (0.20, Costs(0.0005, 0.0002)),
        (0.25, Costs(0.0005, 0.0002)),
        (0.30, Costs(0.0005, 0.0002)),
    ]:
        for walk_forward in (252, 1008, 2016, 2600):
            rows = []
            for seed in range(10):
                bars = ar1(BARS, seed, phi=phi).bars
                close = pd.Series(bars["close"].to_numpy(), index=pd.DatetimeIndex(bars["timestamp"]))
                positions = pd.DataFrame({"oracle": ar1_rule(bars).astype(int)}, index=close.index)
                part = slice(end - walk_forward, end)
                returns = backtest_with_returns(close.iloc[part], positions.iloc[part], costs)[1][:, 0]
                deflated = [oracle_psr(returns, n) for n in N_EFFECTIVE]
                rows.append((sharpe_ratio(returns) * np.sqrt(252), oracle_psr(returns), *deflated))
            sharpes, psrs, *dsrs = np.array(rows).T
            passed = int((psrs >= 0.95).sum())
            searched = ", ".join(
                f"N={n}: {int((d >= 0.95).sum())}/10" for n, d in zip(N_EFFECTIVE, dsrs, strict=True)
            )
            print(
                f"phi={phi:.2f} fees+slippage={costs.fees + costs.slippage:.4f} walk-forward={walk_forward}: "
                f"oracle Sharpe median {np.median(sharpes):.2f}, PSR(0) >= 0.95 on {passed}/10; "
                f"DSR >= 0.95 as a search's winner {searched}"
            )


if __name__ == "__main__":
    main()
