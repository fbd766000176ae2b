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

import numpy as np
from bench_planted_promotions import holdout_start, oracle_returns, planted, psr

from pipelines.config_files import default_config
from pipelines.search.stats import expected_max_sharpe, null_sharpe_variance, sharpe_ratio
from pipelines.trading.backtest import Costs

SEEDS = 10
N_EFFECTIVE = (12, 25)  # the planted runs' effective trial counts (median, upper quartile)
WALK_FORWARDS = (252, 504, 756, 1008, 2016, 2600)
DAILY_COSTS, NO_COSTS = Costs(0.0005, 0.0002), Costs(0.0, 0.0)

# structure -> [(strength label, strength, costs)]; strengths as bench_planted_promotions.planted
TABLE: dict[str, list[tuple[str, float, Costs]]] = {
    "ar1": [(f"phi={p:.2f}", p, DAILY_COSTS) for p in (0.10, 0.15, 0.20, 0.25, 0.30)]
    + [("phi=0.10 no costs", 0.10, NO_COSTS)],
    "momentum": [(f"strength={s:.2f}", s, DAILY_COSTS) for s in (0.5, 0.7, 0.8, 0.9)],
    "vol_regime": [(f"drift=±{d:.4f}", d, DAILY_COSTS) for d in (0.0012, 0.0016, 0.002, 0.0025)],
    "day_of_week": [(f"friday={e:.4f}", e, DAILY_COSTS) for e in (0.002, 0.004, 0.006, 0.008)],
}


def oracle_psr(returns: np.ndarray, n_effective: float = 1.0) -> float:
    """As the gate deflates: SR0 of ``n_effective`` skill-less bets over the null variance 1/T."""
    return psr(returns, expected_max_sharpe(n_effective, null_sharpe_variance(len(returns))))


def power_row(structure: str, strength: float, costs: Costs, walk_forward: int) -> str:
    end = holdout_start(default_config("daily").holdout_bars)  # the bars the chain searches end here
    rows = []
    for seed in range(SEEDS):
        series, oracle = planted(structure, seed, strength)
        _, returns = oracle_returns(series, oracle, end - walk_forward, end, costs.fees, costs.slippage)
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
        for label, strength, costs in TABLE[name]:
            for walk_forward in WALK_FORWARDS:
                print(f"{name} {label}: {power_row(name, strength, costs, walk_forward)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
