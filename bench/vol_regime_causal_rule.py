"""How much of the volatility regime can a model know? Its oracle against the best causal rule.

A diagnostic (not a ``results.json`` entry). ``planted_promotions`` judges the volatility regime
by its oracle, which holds the true regime of every bar (long when calm, short when stormy). A
model sees the regime only through trailing features, and a 20-bar volatility needs bars to
notice a switch. The causal rule here is the best such reading with the truth's help: the
``vol_20`` feature against the geometric middle of the calm and storm volatilities the series
was drawn with, long below it (and short above, or flat for the long-only variant). Each is
traded through the chain's backtest with the daily config's fees and slippage, on the run's
walk-forward bars (what the gate's DSR judges) and on the unseen year. Prints one line per series.

``--gate`` asks instead what the gate would make of the causal rule had it won a search: the
variant a search would pick (the better of the two on the walk-forward), its DSR as the chain
computes it (active returns over buy-and-hold held per fold, SR0 of ``N_EFFECTIVE`` skill-less
bets over the null variance 1/T), and its unseen-year Sharpe; then, per drift, on how many
series it would be promoted and earn on the unseen year. That count is the most a model of the
regime can be expected to reach at that drift.

Usage: ``.venv/bin/python bench/vol_regime_causal_rule.py [SEED ...]`` (default 100-103, the
bench's series at the matched strength); ``... --gate [DRIFT ...]`` (default the matched drift;
seeds 100-119).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from bench_planted_promotions import BARS, MATCHED_STRENGTHS, UNSEEN, backtest_sharpe, holdout_start, planted

from pipelines.config_files import default_config
from pipelines.features.core import compute_features
from pipelines.search.benchmark import active_returns, traded_benchmark_returns
from pipelines.search.stats import deflated_sharpe_ratio, null_sharpe_variance
from pipelines.trading.backtest import Costs, backtest_with_returns

N_EFFECTIVE = (10, 20)  # the effective trial counts of the ten matched-strength runs: ~ quartiles (6-55)
GATE_SEEDS = range(100, 120)


def positions(seed: int, drift: float) -> dict[str, np.ndarray]:
    """The oracle's and the two causal rules' positions over the whole series."""
    series, oracle = planted("vol_regime", seed, drift)
    calm, storm = series.truth["calm"]["vol"], series.truth["storm"]["vol"]
    calm_now = compute_features(series.bars)["vol_20"].to_numpy() < np.sqrt(calm * storm)
    return {
        "oracle (true regime)": oracle,
        "vol_20 rule, long/short": np.where(calm_now, 1, -1),
        "vol_20 rule, long-only": calm_now.astype(int),
    }


def rules(seed: int, drift: float = MATCHED_STRENGTHS["vol_regime"]) -> dict[str, dict[str, float]]:
    series, _ = planted("vol_regime", seed, drift)
    config = default_config("daily")
    holdout = holdout_start(config.holdout_bars)
    spans = {
        "walk_forward": slice(holdout - config.n_folds * config.val_bars, holdout),
        "unseen": slice(BARS - UNSEEN, BARS),
    }
    return {
        name: {
            span: round(backtest_sharpe(series.bars.iloc[bars], pos[bars], config.fees, config.slippage), 2)
            for span, bars in spans.items()
        }
        for name, pos in positions(seed, drift).items()
    }


def walk_forward_active(bars: pd.DataFrame, pos: np.ndarray) -> np.ndarray:
    """Per-bar active returns over the run's walk-forward folds, each fold traded (and its
    buy-and-hold benchmark held) from its own first close, as the search scores a trial."""
    config = default_config("daily")
    costs = Costs(config.fees, config.slippage)
    holdout = holdout_start(config.holdout_bars)
    strategy, bench = [], []
    for fold in range(config.n_folds):
        block = slice(
            holdout - (config.n_folds - fold) * config.val_bars,
            holdout - (config.n_folds - fold - 1) * config.val_bars,
        )
        close = pd.Series(
            bars["close"].to_numpy()[block], index=pd.DatetimeIndex(bars["timestamp"].iloc[block])
        )
        held = pd.DataFrame({"rule": pos[block].astype(int)}, index=close.index)
        strategy.append(np.nan_to_num(backtest_with_returns(close, held, costs)[1][:, 0]))
        bench.append(traded_benchmark_returns(close, "buy_and_hold", costs, 252))
    return active_returns(np.concatenate(strategy), np.concatenate(bench))


def gate_row(seed: int, drift: float) -> dict[str, float | str | bool]:
    """The causal variant a search would pick, its DSR at each ``N_EFFECTIVE`` and its unseen Sharpe."""
    sharpes = rules(seed, drift)
    causal = [name for name in sharpes if name.startswith("vol_20")]
    picked = max(causal, key=lambda name: sharpes[name]["walk_forward"])
    series, _ = planted("vol_regime", seed, drift)
    active = walk_forward_active(series.bars, positions(seed, drift)[picked])
    variance = null_sharpe_variance(len(active))
    row: dict[str, float | str | bool] = {"picked": picked.removeprefix("vol_20 rule, "), **sharpes[picked]}
    for n in N_EFFECTIVE:
        row[f"dsr_n{n}"] = round(deflated_sharpe_ratio(active, n, variance).dsr, 3)
    return row


def gate_summary(drift: float, rows: list[dict[str, float | str | bool]]) -> str:
    """Per ``N_EFFECTIVE``: on how many series the picked rule passes, and earns on the unseen year."""
    counts = []
    for n in N_EFFECTIVE:
        passed = [r for r in rows if float(r[f"dsr_n{n}"]) >= 0.95]
        earned = sum(float(r["unseen"]) > 0 for r in passed)
        counts.append(f"N={n}: passes on {len(passed)}/{len(rows)}, unseen Sharpe > 0 on {earned} of those")
    return f"drift=±{drift:.4f}: " + "; ".join(counts)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--gate"]:
        for drift in [float(d) for d in args[1:]] or [MATCHED_STRENGTHS["vol_regime"]]:
            rows = []
            for seed in GATE_SEEDS:
                rows.append(gate_row(seed, drift))
                print(f"  vol_regime_{seed} drift {drift}", rows[-1], flush=True)
            print(gate_summary(drift, rows), flush=True)
    else:
        for seed in [int(s) for s in args] or [100, 101, 102, 103]:
            print(f"vol_regime_{seed}", rules(seed), flush=True)
