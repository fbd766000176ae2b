"""How much to trust the search's winner: Deflated Sharpe, PBO, the benchmark, the audit.

The best of many backtests looks good by construction. The Deflated Sharpe Ratio discounts the
winner's Sharpe by the best a population of skill-less trials would show; the population is
every trial this model key and family ever ran (the selection ledger in our store), and N is
its *effective* number of independent trials. The variance in SR0 is what a skill-less trial's
Sharpe would show over the walk-forward's T bars, 1/T: the null the DSR tests. The spread of
the trials' own Sharpes (reported beside it) also holds their real differences in skill: where
a real edge is found, the trials that found it and those that did not made it up to 3 times 1/T
on the planted AR(1) series, and the gate refused edges a perfect model had (bench:
planted_promotions); on random walks it was 0.1-1.1 times 1/T. Two rules make a rerun unable
to wear the gate down: reruns add to N (they never replace it), and the bar SR0 never falls
below one an earlier search of the population already set, because the expected best of a
population is at least the expected best of any part of it. An unchanged winner's DSR can
therefore only fall.

Every Sharpe here is of *active* returns (``pipelines.search.benchmark``): skill over what
holding the instrument gives for free, not exposure to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import optuna

from pipelines.search.benchmark import BenchmarkName, active_returns, compare_to_benchmark
from pipelines.search.stats import (
    deflated_sharpe_ratio,
    effective_trials,
    expected_max_sharpe,
    null_sharpe_variance,
    probability_of_backtest_overfitting,
    sharpe_ratio,
)
from pipelines.search.study import fresh_trials
from pipelines.terms import TrialAttr
from pipelines.trading.objectives import PENALTY_MARKERS

State = optuna.trial.TrialState


@dataclass(frozen=True)
class PopulationShare:
    """What one search adds to the model key's trial population (a selection-ledger row)."""

    family: str
    n_backtests: int  # every strategy variant of every finished trial
    n_effective: float  # independent bets among them
    n_sharpes: int  # trials whose Sharpe enters the variance
    sharpe_sum: float
    sharpe_sq_sum: float
    sr0: float  # the bar this run's winner had to clear

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pooled_variance(shares: Sequence[Any]) -> float:
    """Sample variance of every trial Sharpe in the shares, from their counts, sums and squares."""
    n = sum(s.n_sharpes for s in shares)
    if n < 2:
        return 0.0
    total = sum(s.sharpe_sum for s in shares)
    squares = sum(s.sharpe_sq_sum for s in shares)
    return max((squares - total * total / n) / (n - 1), 0.0)


def backtests_in(trials: list[optuna.trial.FrozenTrial]) -> int:
    """Backtests these trials tried: every strategy variant of every finished trial."""
    return sum(int(t.user_attrs.get(TrialAttr.N_VARIANTS, 1)) for t in trials if t.state.is_finished())


def trial_returns(trial: optuna.trial.FrozenTrial) -> np.ndarray:
    """The trial's out-of-sample per-bar returns, folds concatenated in time order."""
    folds = trial.user_attrs.get(TrialAttr.FOLD_RETURNS) or []
    return np.concatenate([np.asarray(f, dtype=float) for f in folds]) if folds else np.empty(0)


def selection_statistics(
    study: optuna.Study,
    best: optuna.trial.FrozenTrial,
    bench: np.ndarray,
    benchmark: BenchmarkName,
    population: Sequence[Any],
    family: str,
    pbo_splits: int,
    exposure: float | None = None,
    extra_backtests: int = 0,
) -> dict[str, Any]:
    """DSR of the best trial against the whole population, PBO over this study, the benchmark.

    ``bench`` is the benchmark's per-bar returns on the walk-forward validation bars (folds
    concatenated, each held from its own first close); ``population`` the earlier searches'
    ledger rows; ``extra_backtests`` those run besides the trials (the race's re-trainings).
    The result's ``share`` is this run's row for the ledger.
    """
    trials = fresh_trials(study)
    complete = [t for t in trials if t.state == State.COMPLETE]
    length = len(bench)
    streams = [active_returns(r, bench) for r in map(trial_returns, complete) if len(r) == length > 0]
    pruned = [t for t in trials if t.state == State.PRUNED]
    sharpes = np.array([sharpe_ratio(a) for a in streams] + partial_sharpes(pruned, bench))
    n_backtests = backtests_in(trials) + extra_backtests
    n_effective = _effective_count(streams, complete, trials, n_backtests)
    floor = max((float(s.sr0) for s in population), default=0.0)
    provisional = PopulationShare(
        family, n_backtests, n_effective, len(sharpes), float(sharpes.sum()), float((sharpes**2).sum()), 0.0
    )
    shares = [*population, provisional]
    n_raw_ever = sum(int(s.n_backtests) for s in shares)
    n_effective_ever = sum(float(s.n_effective) for s in shares)
    variance = null_sharpe_variance(max(length, 1))
    best_raw = trial_returns(best)
    out: dict[str, Any] = {
        "benchmark_name": benchmark,
        "n_backtests_ever": n_raw_ever,
        "n_backtests_this_run": n_backtests,
        "n_effective_ever": n_effective_ever,
        "n_effective_this_run": n_effective,
        "n_earlier_searches": len(population),
        # the spread of the trials' Sharpes: luck and real differences in skill (shown, not used)
        "sharpe_variance_across_trials": pooled_variance(shares),
        "sharpe_variance_null": variance,
        "sr0_population": expected_max_sharpe(max(n_effective_ever, 1.0), variance),
        "sr0_floor": floor,
    }
    # Without two comparable trials ever there was no search to deflate, and one backtest is
    # not evidence enough: leave the DSR out (the gate then fails).
    enough = len(best_raw) == length > 2 and sum(s.n_sharpes for s in shares) >= 2
    if enough:
        best_active = active_returns(best_raw, bench)
        dsr = deflated_sharpe_ratio(best_active, max(n_effective_ever, 1.0), variance, sr0_floor=floor)
        out["dsr"] = dsr.to_dict()
        out["benchmark"] = compare_to_benchmark(best_raw, bench, benchmark, exposure).to_dict()
    else:
        out["dsr"] = None
        out["benchmark"] = None
    sr0 = out["dsr"]["sr0"] if out["dsr"] else max(out["sr0_population"], floor)
    out["share"] = PopulationShare(**{**provisional.to_dict(), "sr0": sr0}).to_dict()
    if len(streams) >= 2 and length >= pbo_splits:
        out["pbo"] = probability_of_backtest_overfitting(
            np.column_stack(streams), n_splits=pbo_splits
        ).to_dict()
    else:
        out["pbo"] = None
        out["pbo_skipped"] = f"needs >= 2 complete trials and >= {pbo_splits} bars (have {len(streams)})"
    return out


def partial_sharpes(pruned: list[optuna.trial.FrozenTrial], bench: np.ndarray) -> list[float]:
    """The active Sharpe ratios of pruned trials over the folds they ran, put on the full
    walk-forward's footing: they belong in the population's spread, whose complete trials are
    the survivors of a pruner that stops the worse ones (left out, a pruned search looked
    tighter than it was and its winner's DSR rose: 0.79 to 0.996 on one planted series). An
    estimate over T_i of the T bars scatters sqrt(T / T_i) times more under no skill, so it is
    scaled by sqrt(T_i / T): skill-less trials then spread as complete ones would."""
    length = len(bench)
    out = []
    for returns in map(trial_returns, pruned):
        if 2 < len(returns) <= length:
            active = active_returns(returns, bench[: len(returns)])
            out.append(sharpe_ratio(active) * float(np.sqrt(len(returns) / length)))
    return out


def _effective_count(
    streams: list[np.ndarray],
    complete: list[optuna.trial.FrozenTrial],
    finished: list[optuna.trial.FrozenTrial],
    n_backtests: int,
) -> float:
    """Independent bets of this search: those among its complete trials' active return streams,
    times the independent variants a trial scores (its strategy grid), with pruned trials taken
    to be as independent as the complete ones; at most the raw count."""
    if n_backtests == 0:
        return 0.0
    among_trials = effective_trials(np.column_stack(streams)) if len(streams) >= 2 else float(len(streams))
    per_trial = [float(t.user_attrs.get(TrialAttr.N_EFFECTIVE_VARIANTS, 1.0)) for t in complete]
    variants = float(np.median(per_trial)) if per_trial else 1.0
    n_finished = sum(1 for t in finished if t.state.is_finished())
    scale = n_finished / len(complete) if complete else 1.0
    return float(min(max(among_trials * variants * scale, 1.0), n_backtests))


def degenerate_audit(study: optuna.Study) -> dict[str, int]:
    """How many of this run's trials said nothing: no trades, NaN/inf values, pruned or failed."""
    trials = fresh_trials(study)

    def with_penalty(marker: str) -> int:
        return sum(1 for t in trials if any(marker in p for p in t.user_attrs.get(TrialAttr.PENALTIES, [])))

    return {
        "trials": len(trials),
        **{kind: sum(map(with_penalty, markers)) for kind, markers in PENALTY_MARKERS.items()},
        "pruned": sum(1 for t in trials if t.state == State.PRUNED),
        "failed": sum(1 for t in trials if t.state == State.FAIL),
        "carried_over": len(study.trials) - len(trials),
    }
