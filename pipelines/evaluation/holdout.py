"""Champion vs challenger on the most recent bars, which neither search nor fine-tune saw.

Both models trade the same holdout fold by fold (vectorbt, fees included, positions reset at
each fold like the walk-forward search), each with its own config's threshold rule. The
challenger replaces the champion only if its mean fold score beats the champion's by
``champion_margin`` and a one-sided paired t-test on the per-bar strategy returns says the
improvement is unlikely to be luck (p <= ``champion_alpha``). Keeping the current model is a
normal outcome and says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import BenchmarkName, PipelineConfig
from pipelines.evaluation.parity import batch_predictions
from pipelines.predictor import LivePredictor
from pipelines.search.benchmark import BenchmarkComparison, compare_to_benchmark, traded_benchmark_returns
from pipelines.trading.backtest import Costs, backtest_with_returns, score
from pipelines.trading.positions import positions_from_predictions


@dataclass
class HoldoutScore:
    """One contender on the holdout: fold scores and metrics, and per-bar strategy returns."""

    model_version: int | None
    params: dict[str, Any]
    fold_scores: list[float]
    fold_metrics: list[dict[str, float]]
    returns: np.ndarray = field(repr=False)
    benchmark_returns: np.ndarray = field(repr=False)  # the benchmark traded on the same blocks
    exposure: float = 0.0  # share of holdout bars with a position

    @property
    def mean_score(self) -> float:
        return float(np.mean(self.fold_scores))

    def against_benchmark(self, benchmark: BenchmarkName) -> BenchmarkComparison:
        """This contender's holdout trading against the free benchmark, paired bar by bar."""
        return compare_to_benchmark(self.returns, self.benchmark_returns, benchmark, self.exposure)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "params": self.params,
            "mean_score": self.mean_score,
            "fold_scores": self.fold_scores,
            "fold_metrics": self.fold_metrics,
        }


def holdout_blocks(start: int, end: int, n_folds: int) -> list[tuple[int, int]]:
    """Contiguous [start, end) blocks tiling the holdout, the last one taking the remainder."""
    edges = np.linspace(start, end, n_folds + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def score_holdout(
    predictor: LivePredictor,
    bars: pd.DataFrame,
    features: pd.DataFrame,
    start: int,
    config: PipelineConfig,
    objective: str,
) -> HoldoutScore:
    """Trade the holdout [start, end of bars) with one model, fold by fold."""
    predictions = batch_predictions(predictor, features, start)
    if len(predictions) != len(bars) - start:
        raise ValueError(f"model v{predictor.model_version} cannot predict every holdout bar")
    close = pd.Series(bars["close"].to_numpy()[start:], index=predictions.index)
    params = predictor.params
    positions = positions_from_predictions(
        predictor.scaler.signal(predictions), [params.entry_threshold], params.long_short
    )
    costs, bars_per_year = Costs(config.fees, config.slippage), config.annualization(bars["timestamp"])
    scores, metrics_rows, returns, bench = [], [], [], []
    for lo, hi in holdout_blocks(0, len(close), config.holdout_folds):
        block = close.iloc[lo:hi]
        bench.append(traded_benchmark_returns(block, config.benchmark, costs, bars_per_year))
        metrics, fold_returns = backtest_with_returns(block, positions.iloc[lo:hi], costs, bars_per_year)
        row = metrics.iloc[0]
        scores.append(score(row, objective, min_trades=1)[0])
        metrics_rows.append({k: float(v) for k, v in row.items()})
        returns.append(np.nan_to_num(fold_returns[:, 0]))
    return HoldoutScore(
        model_version=predictor.model_version,
        params=params.model_dump(),
        fold_scores=scores,
        fold_metrics=metrics_rows,
        returns=np.concatenate(returns),
        benchmark_returns=np.concatenate(bench),
        exposure=float((positions.to_numpy() != 0).mean()),
    )


@dataclass(frozen=True)
class Comparison:
    challenger_wins: bool
    reason: str
    score_diff: float | None = None
    p_value: float | None = None
    folds_won: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def compare(challenger: HoldoutScore, champion: HoldoutScore, config: PipelineConfig) -> Comparison:
    """Does the challenger beat the champion on the holdout, by enough, and not by luck?"""
    from scipy import stats

    diff = challenger.mean_score - champion.mean_score
    bar_diff = challenger.returns - champion.returns
    if np.allclose(bar_diff, 0.0, atol=1e-12):
        p_value = 1.0  # the same trades: nothing to prefer
    else:
        p_value = float(stats.ttest_1samp(bar_diff, 0.0, alternative="greater").pvalue)
    won = sum(c > d for c, d in zip(challenger.fold_scores, champion.fold_scores, strict=True))
    wins = diff > config.champion_margin and p_value <= config.champion_alpha
    verdict = "challenger replaces the champion" if wins else "keep current"
    reason = (
        f"{verdict}: holdout score {challenger.mean_score:.3f} vs champion "
        f"v{champion.model_version} {champion.mean_score:.3f} (diff {diff:+.3f}, needs > "
        f"{config.champion_margin}); paired t-test on {len(bar_diff)} bars p={p_value:.3f} "
        f"(needs <= {config.champion_alpha}); folds won {won}/{len(challenger.fold_scores)}"
    )
    return Comparison(wins, reason, diff, p_value if math.isfinite(p_value) else 1.0, won)


def unopposed(reason: str) -> Comparison:
    """No champion that could trade: the challenger is not held back by one."""
    return Comparison(True, reason)
