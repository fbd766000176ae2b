"""How much of the volatility regime can a model know? Its oracle against the best causal rule.

A diagnostic (not a ``results.json`` entry). ``planted_promotions`` judges the volatility regime
by its oracle, which holds the true regime of every bar (long when calm, short when stormy). A
model sees the regime only through trailing features, and a 20-bar volatility needs bars to
notice a switch. The causal rule here is the best such reading with the truth's help: the
``vol_20`` feature against the geometric middle of the calm and storm volatilities the series
was drawn with, long below it (and short above, or flat for the long-only variant); and the same
with the faster ``vol_10``. Each is traded through the chain's backtest with the daily config's
fees and slippage, on the run's walk-forward bars (what the gate's DSR judges) and on the unseen
year. Prints one line per series.

``--gate`` asks instead what the gate would make of the causal rule had it won a search
(``bench_planted_promotions.causal_reader``, which ``planted_promotions`` also runs on each
volatility-regime series against the run's own SR0): the side a search would pick (the better
Sharpe of the walk-forward's active returns), its DSR as the chain computes it (active returns
over buy-and-hold held per fold, SR0 of ``N_EFFECTIVE`` skill-less bets over the null variance
1/T), and its unseen-year Sharpe; then, per drift, on how many series it would be promoted and
earn on the unseen year. That count is the most a model of the regime can be expected to reach.

``--windows`` compares the volatility windows a feature could read, each alone, through the same
gate at the matched drift (why ``vol_10`` joined ``vol_20`` among the features).

Usage: ``.venv/bin/python bench/vol_regime_causal_rule.py [SEED ...]`` (default 100-103, the
bench's series at the matched strength); ``... --gate [DRIFT ...]`` (default the matched drift;
seeds 100-119); ``... --windows [WINDOW ...]`` (default 5 10 20).
"""

from __future__ import annotations

import sys

import numpy as np
from bench_planted_promotions import (
    BARS,
    MATCHED_STRENGTHS,
    READER_WINDOWS,
    UNSEEN,
    backtest_sharpe,
    causal_reader,
    holdout_start,
    planted,
    vol_regime_causal_positions,
    walk_forward_folds,
)

from pipelines.config_files import default_config
from pipelines.data.synthetic import SyntheticSeries
from pipelines.search.stats import expected_max_sharpe, null_sharpe_variance

N_EFFECTIVE = (10, 20)  # the effective trial counts of the ten matched-strength runs: ~ quartiles (6-55)
GATE_SEEDS = range(100, 120)


def positions(series: SyntheticSeries, oracle: np.ndarray) -> dict[str, np.ndarray]:
    """The oracle's and the causal rules' positions over the whole series."""
    causal = {
        f"vol_{window} rule, {side}": pos
        for window in READER_WINDOWS
        for side, pos in vol_regime_causal_positions(series, window).items()
    }
    return {"oracle (true regime)": oracle, **causal}


def rules(seed: int, drift: float = MATCHED_STRENGTHS["vol_regime"]) -> dict[str, dict[str, float]]:
    series, oracle = planted("vol_regime", seed, drift)
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
        for name, pos in positions(series, oracle).items()
    }


def gate_row(seed: int, drift: float, windows: tuple[int, ...] = READER_WINDOWS) -> dict[str, float | str]:
    """The causal reader (``bench_planted_promotions.causal_reader``, reading ``windows``) had it
    won a search of each ``N_EFFECTIVE`` skill-less bets: the rule it picks, its DSR and its
    unseen Sharpe."""
    series, _ = planted("vol_regime", seed, drift)
    config = default_config("daily")
    holdout = holdout_start(config.holdout_bars)
    folds = walk_forward_folds(holdout, config.n_folds, config.val_bars)
    row: dict[str, float | str] = {}
    for n in N_EFFECTIVE:
        sr0 = expected_max_sharpe(n, null_sharpe_variance(config.n_folds * config.val_bars))
        reader = causal_reader(series, folds, BARS - UNSEEN, config.fees, config.slippage, sr0, windows)
        row.update(picked=reader["causal_side"], unseen=reader["causal_sharpe"])
        row[f"dsr_n{n}"] = reader["causal_dsr_at_run_sr0"]
    return row


def gate_summary(drift: float, rows: list[dict[str, float | str]]) -> str:
    """Per ``N_EFFECTIVE``: on how many series the picked rule passes, and earns on the unseen year."""
    counts = []
    for n in N_EFFECTIVE:
        passed = [r for r in rows if float(r[f"dsr_n{n}"]) >= 0.95]
        earned = sum(float(r["unseen"]) > 0 for r in passed)
        counts.append(f"N={n}: passes on {len(passed)}/{len(rows)}, unseen Sharpe > 0 on {earned} of those")
    return f"drift=±{drift:.4f}: " + "; ".join(counts)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--windows"]:
        for window in [int(w) for w in args[1:]] or [5, 10, 20]:
            rows = [gate_row(seed, MATCHED_STRENGTHS["vol_regime"], (window,)) for seed in GATE_SEEDS]
            print(f"vol_{window} alone: " + gate_summary(MATCHED_STRENGTHS["vol_regime"], rows), flush=True)
    elif args[:1] == ["--gate"]:
        for drift in [float(d) for d in args[1:]] or [MATCHED_STRENGTHS["vol_regime"]]:
            rows = []
            for seed in GATE_SEEDS:
                rows.append(gate_row(seed, drift))
                print(f"  vol_regime_{seed} drift {drift}", rows[-1], flush=True)
            print(gate_summary(drift, rows), flush=True)
    else:
        for seed in [int(s) for s in args] or [100, 101, 102, 103]:
            print(f"vol_regime_{seed}", rules(seed), flush=True)
