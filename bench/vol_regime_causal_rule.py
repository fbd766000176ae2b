"""How much of the volatility regime can a model know? Its oracle against the best causal rule.

A diagnostic (not a ``results.json`` entry). ``planted_promotions`` judges the volatility regime
by its oracle, which holds the true regime of every bar (long when calm, short when stormy). A
model sees the regime only through trailing features, and a 20-bar volatility needs bars to
notice a switch. The causal rule here is the best such reading with the truth's help: the
``vol_20`` feature against the geometric middle of the calm and storm volatilities the series
was drawn with, long below it (and short above, or flat for the long-only variant). Each is
traded through the chain's backtest with the daily config's fees and slippage, on the run's
walk-forward bars (what the gate's DSR judges) and on the unseen year. Prints one line per series.

Usage: ``.venv/bin/python bench/vol_regime_causal_rule.py [SEED ...]`` (default 100-103, the
bench's series at the matched strength).
"""

from __future__ import annotations

import sys

import numpy as np
from bench_planted_promotions import BARS, MATCHED_STRENGTHS, UNSEEN, backtest_sharpe, holdout_start, planted

from pipelines.config_files import default_config
from pipelines.features.core import compute_features


def rules(seed: int) -> dict[str, dict[str, float]]:
    series, oracle = planted("vol_regime", seed, MATCHED_STRENGTHS["vol_regime"])
    calm, storm = series.truth["calm"]["vol"], series.truth["storm"]["vol"]
    calm_now = compute_features(series.bars)["vol_20"].to_numpy() < np.sqrt(calm * storm)
    positions = {
        "oracle (true regime)": oracle,
        "vol_20 rule, long/short": np.where(calm_now, 1, -1),
        "vol_20 rule, long-only": calm_now.astype(int),
    }
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
        for name, pos in positions.items()
    }


if __name__ == "__main__":
    for seed in [int(s) for s in sys.argv[1:]] or [100, 101, 102, 103]:
        print(f"vol_regime_{seed}", rules(seed), flush=True)
