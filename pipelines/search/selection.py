"""How much to trust the search's winner: Deflated Sharpe, PBO and the degenerate-trial audit.

The best of many backtests looks good by construction. The Deflated Sharpe Ratio discounts
the winner's Sharpe for every backtest ever tried for this model family (each trial scores a
whole strategy grid, so each variant counts) and for non-normal returns; the Probability of
Backtest Overfitting asks, by combinatorially symmetric cross-validation over the trials'
out-of-sample returns, how often the in-sample winner ends up below the median out of sample.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna

from pipelines.search.stats import deflated_sharpe_ratio, probability_of_backtest_overfitting, sharpe_ratio
from pipelines.search.study import fresh_trials

State = optuna.trial.TrialState


def backtests_in(trials: list[optuna.trial.FrozenTrial]) -> int:
    """Backtests these trials tried: every strategy variant of every finished trial."""
    return sum(int(t.user_attrs.get("n_variants", 1)) for t in trials if t.state.is_finished())


def trial_returns(trial: optuna.trial.FrozenTrial) -> np.ndarray:
    """The trial's out-of-sample per-bar returns, folds concatenated in time order."""
    folds = trial.user_attrs.get("fold_returns") or []
    return np.concatenate([np.asarray(f, dtype=float) for f in folds]) if folds else np.empty(0)


def selection_statistics(
    study: optuna.Study, best: optuna.trial.FrozenTrial, prior_backtests: int, pbo_splits: int
) -> dict[str, Any]:
    """DSR of the best trial (N = prior + this study's backtests) and PBO over this study's trials."""
    trials = fresh_trials(study)
    n_backtests = prior_backtests + backtests_in(trials)
    complete = [t for t in trials if t.state == State.COMPLETE]
    full_length = len(trial_returns(best))
    series = [r for r in map(trial_returns, complete) if len(r) == full_length and full_length > 0]
    sharpes = np.array([sharpe_ratio(r) for r in series])
    variance = float(np.var(sharpes, ddof=1)) if len(sharpes) > 1 else 0.0
    out: dict[str, Any] = {
        "n_backtests_ever": n_backtests,
        "n_backtests_this_run": n_backtests - prior_backtests,
        "sharpe_variance_across_trials": variance,
    }
    returns = trial_returns(best)
    # Without two comparable trials the spread of Sharpe ratios is unknown and the DSR would not
    # deflate at all: leave it out (the gate then fails) rather than report a flattering number.
    enough = len(returns) > 2 and len(sharpes) >= 2
    out["dsr"] = deflated_sharpe_ratio(returns, max(n_backtests, 1), variance).to_dict() if enough else None
    if len(series) >= 2 and full_length >= pbo_splits:
        matrix = np.column_stack(series)
        out["pbo"] = probability_of_backtest_overfitting(matrix, n_splits=pbo_splits).to_dict()
    else:
        out["pbo"] = None
        out["pbo_skipped"] = f"needs >= 2 complete trials and >= {pbo_splits} bars (have {len(series)})"
    return out


def degenerate_audit(study: optuna.Study) -> dict[str, int]:
    """How many of this run's trials said nothing: no trades, NaN/inf values, pruned or failed."""
    trials = fresh_trials(study)

    def with_penalty(marker: str) -> int:
        return sum(1 for t in trials if any(marker in p for p in t.user_attrs.get("penalties", [])))

    return {
        "trials": len(trials),
        "no_trades": with_penalty("trades"),
        "nan_value": with_penalty("is nan"),
        "infinite_value": with_penalty("is inf") + with_penalty("is -inf"),
        "zero_variance": with_penalty("zero variance"),
        "pruned": sum(1 for t in trials if t.state == State.PRUNED),
        "failed": sum(1 for t in trials if t.state == State.FAIL),
        "carried_over": len(study.trials) - len(trials),
    }
