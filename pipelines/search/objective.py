"""The walk-forward objective: train on the past, trade the next block, score with vectorbt.

Folds are consecutive validation blocks at the end of the window. Each fold trains on every
bar before it, less a purge gap (no training label, the next bar's return, reaches into the
validation block) and an optional embargo (serially correlated bars right before the block
are left out too). Per-fold scores are reported to Optuna for pruning; each fold's per-bar
strategy returns are kept on the trial for the selection statistics (DSR, PBO).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import optuna
import pandas as pd

from pipelines.config import HyperParams, ParamSpec, PipelineConfig
from pipelines.features.core import FeatureScaler, compute_features, next_return, windows_ending_in
from pipelines.search.backtest import Costs, backtest_with_returns, score
from pipelines.search.benchmark import BenchmarkName, active_returns, benchmark_returns
from pipelines.search.history import TRAIN_FAMILY
from pipelines.search.space import resolve, suggest
from pipelines.search.stats import effective_trials
from pipelines.search.strategy import StrategyGrid
from pipelines.training.trainer import next_bar, predict, train_new

log = logging.getLogger(__name__)

LABEL_HORIZON = 1  # bars a next-bar label looks ahead: the purge gap (config.label_horizon for several)
RETURNS_DIGITS = 8  # per-bar returns kept on a trial are rounded: enough for Sharpe, small in the DB


@dataclass(frozen=True)
class Fold:
    train_start: int
    train_end: int  # exclusive, purged
    val_start: int
    val_end: int  # exclusive


def walk_forward_folds(
    n_rows: int, n_folds: int, val_bars: int, purge: int = LABEL_HORIZON, embargo: int = 0
) -> list[Fold]:
    """Expanding-window folds whose validation blocks tile the last ``n_folds*val_bars`` rows."""
    first_val = n_rows - n_folds * val_bars
    gap = purge + embargo
    if first_val <= gap:
        raise ValueError(f"{n_rows} rows cannot hold {n_folds} folds of {val_bars} bars")
    return [
        Fold(0, first_val + k * val_bars - gap, first_val + k * val_bars, first_val + (k + 1) * val_bars)
        for k in range(n_folds)
    ]


def config_folds(n_rows: int, config: PipelineConfig) -> list[Fold]:
    return walk_forward_folds(
        n_rows, config.n_folds, config.val_bars, purge=config.label_horizon, embargo=config.embargo_bars
    )


@dataclass
class PreparedData:
    """Bars of the search window with their features and labels, computed once per run."""

    bars: pd.DataFrame
    features: pd.DataFrame
    target: pd.Series

    @classmethod
    def from_bars(cls, bars: pd.DataFrame, window_bars: int) -> PreparedData:
        return cls.from_frames(bars, compute_features(bars), next_return(bars), window_bars)

    @classmethod
    def from_frames(
        cls, bars: pd.DataFrame, features: pd.DataFrame, target: pd.Series, window_bars: int
    ) -> PreparedData:
        """The last ``window_bars`` rows; features were computed on the full history."""
        return cls(bars=bars, features=features, target=target).tail(window_bars)

    def tail(self, n_rows: int) -> PreparedData:
        keep = slice(max(len(self.bars) - n_rows, 0), len(self.bars))
        return PreparedData(
            self.bars.iloc[keep].reset_index(drop=True), self.features.iloc[keep], self.target.iloc[keep]
        )

    def before(self, end: int) -> PreparedData:
        """Rows before ``end``; labels that look past it are unknown there (purged)."""
        target = self.target.iloc[:end].copy()
        target.iloc[max(end - LABEL_HORIZON, 0) :] = float("nan")
        return PreparedData(self.bars.iloc[:end], self.features.iloc[:end], target)


def labelled_windows(
    scaled: np.ndarray, y: np.ndarray, seq_len: int, start: int, end: int, horizons: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Training pairs for windows ending in [start, end) whose labels are all known.

    ``y[t]`` is the next-bar return at t; with several horizons the label of the window ending
    at t is ``y[t], y[t+1], ...`` (one column per horizon).
    """
    x, ends = windows_ending_in(scaled, seq_len, start, end)
    if horizons == 1:
        labels = y[ends]
    else:
        padded = np.concatenate([y, np.full(horizons - 1, np.nan)])
        labels = np.stack([padded[ends + h] for h in range(horizons)], axis=1)
    known = ~np.isnan(labels).reshape(len(labels), -1).any(axis=1)
    return x[known], labels[known]


@dataclass
class FoldOutcome:
    """One fold, every strategy variant: metrics (one row per variant) and per-bar returns."""

    metrics: pd.DataFrame
    returns: np.ndarray  # bars x variants
    values: np.ndarray  # objective value per variant (penalty where degenerate)
    penalties: list[str | None]
    val_loss: float
    close: pd.Series  # validation-block closes, for stitching an out-of-sample equity curve
    positions: pd.DataFrame


def evaluate_fold(
    data: PreparedData,
    fold: Fold,
    params: HyperParams,
    config: PipelineConfig,
    objective: str,
    grid: StrategyGrid,
) -> FoldOutcome:
    """Train on the fold's past, predict its validation block, backtest every strategy variant."""
    train_feats = data.features.iloc[fold.train_start : fold.train_end]
    train_target = data.target.iloc[fold.train_start : fold.train_end]
    scaler = FeatureScaler.fit(train_feats, train_target)
    scaled = scaler.transform(data.features)
    y_all = data.target.to_numpy() / scaler.target_std
    x, y = labelled_windows(
        scaled, y_all, params.seq_len, fold.train_start, fold.train_end, config.label_horizon
    )
    result = train_new(params, x, y, seed=config.seed, horizon_weights=config.horizon_loss_weights)
    x_val, val_ends = windows_ending_in(scaled, params.seq_len, fold.val_start, fold.val_end)
    preds = next_bar(predict(result.network, x_val))
    index = data.features.index[val_ends]
    y_val = y_all[val_ends]
    finite = ~np.isnan(y_val)
    val_loss = float(np.mean((preds[finite] - y_val[finite]) ** 2))
    close = pd.Series(data.bars["close"].to_numpy()[val_ends], index=index)
    positions = grid.positions(pd.Series(preds, index=index))
    metrics, returns = backtest_with_returns(
        close, positions, Costs(config.fees, config.slippage), config.annualization(data.bars["timestamp"])
    )
    scored = [score(row, objective, config.min_trades) for _, row in metrics.iterrows()]
    return FoldOutcome(
        metrics=metrics,
        returns=returns,
        values=np.array([v for v, _ in scored]),
        penalties=[r for _, r in scored],
        val_loss=val_loss,
        close=close,
        positions=positions,
    )


def make_objective(
    data: PreparedData,
    config: PipelineConfig,
    space: dict[str, ParamSpec],
    objective: str,
    grid: StrategyGrid,
):
    """An Optuna objective: the best strategy variant's mean fold score.

    Reported fold by fold so weak trials get pruned: the running mean for the median and
    Hyperband pruners, the fold's own value for the Wilcoxon pruner (which compares trials fold
    against fold).
    """
    folds = config_folds(len(data.bars), config)
    per_fold = config.pruner == "wilcoxon"

    def run_trial(trial: optuna.Trial) -> float:
        params = resolve(config.hyperparams, suggest(trial, space))
        if TRAIN_FAMILY in trial.user_attrs:  # the baseline reference, or production's own family
            params = params.model_copy(update={"model_family": trial.user_attrs[TRAIN_FAMILY]})
        trial.set_user_attr("model_family", params.model_family)
        trial.set_user_attr("n_variants", grid.size)
        values = np.empty((0, grid.size))
        outcomes: list[FoldOutcome] = []
        for step, fold in enumerate(folds):
            outcome = evaluate_fold(data, fold, params, config, objective, grid)
            outcomes.append(outcome)
            values = np.vstack([values, outcome.values])
            chosen = int(np.argmax(values.mean(axis=0)))
            trial.report(float(values[-1, chosen] if per_fold else values[:, chosen].mean()), step)
            if trial.should_prune():
                _record(trial, outcomes, chosen, grid, config.benchmark)
                raise optuna.TrialPruned(f"pruned after fold {step}")
        # once per trial: each attribute is a storage write
        _record(trial, outcomes, chosen, grid, config.benchmark)
        return float(values[:, chosen].mean())

    return run_trial


def _record(
    trial: optuna.Trial,
    outcomes: list[FoldOutcome],
    chosen: int,
    grid: StrategyGrid,
    benchmark: BenchmarkName,
) -> None:
    """What the report and the statistics read back: the chosen variant, fold by fold, and how
    many independent bets the trial's strategy variants were (for the DSR's effective N)."""
    trial.set_user_attr("strategy", grid.variant(chosen))
    trial.set_user_attr("n_effective_variants", round(variant_bets(outcomes, benchmark), 3))
    trial.set_user_attr(
        "fold_metrics",
        [
            {**{k: float(v) for k, v in o.metrics.iloc[chosen].items()}, "value": float(o.values[chosen])}
            for o in outcomes
        ],
    )
    trial.set_user_attr(
        "penalties",
        [f"fold {i}: {o.penalties[chosen]}" for i, o in enumerate(outcomes) if o.penalties[chosen]],
    )
    trial.set_user_attr(
        "fold_returns",
        [np.round(np.nan_to_num(o.returns[:, chosen]), RETURNS_DIGITS).tolist() for o in outcomes],
    )


def variant_bets(outcomes: list[FoldOutcome], benchmark: BenchmarkName) -> float:
    """Independent bets among a trial's strategy variants: the effective number of their
    active return streams over the folds it ran (thresholds of one prediction set are close)."""
    returns = np.vstack([np.nan_to_num(o.returns) for o in outcomes])
    bench = np.concatenate([benchmark_returns(o.close.to_numpy(), benchmark) for o in outcomes])
    active = np.column_stack([active_returns(returns[:, j], bench) for j in range(returns.shape[1])])
    return effective_trials(active)


def fold_benchmark_returns(data: PreparedData, config: PipelineConfig) -> np.ndarray:
    """The benchmark's per-bar returns on the walk-forward validation bars, folds concatenated,
    each fold held from its own first close (as each fold's backtest starts flat)."""
    close = data.bars["close"].to_numpy()
    return np.concatenate(
        [
            benchmark_returns(close[f.val_start : f.val_end], config.benchmark)
            for f in config_folds(len(data.bars), config)
        ]
    )
