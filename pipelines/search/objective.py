"""The walk-forward objective: train on the past, trade the next block, score with vectorbt.

Folds are consecutive validation blocks at the end of the window. Each fold trains on every
bar before it, less a purge gap so that no training label (the next bar's return) reaches
into the validation block. Per-fold scores are reported to Optuna for pruning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd

from pipelines.config import HyperParams, ParamSpec, PipelineConfig
from pipelines.features.core import FeatureScaler, compute_features, next_return, windows_ending_in
from pipelines.search.backtest import Costs, backtest_positions, positions_from_predictions, score
from pipelines.search.space import resolve, suggest
from pipelines.training.trainer import predict, train_new

log = logging.getLogger(__name__)

LABEL_HORIZON = 1  # bars a label looks ahead: the purge gap


@dataclass(frozen=True)
class Fold:
    train_start: int
    train_end: int  # exclusive, purged
    val_start: int
    val_end: int  # exclusive


def walk_forward_folds(n_rows: int, n_folds: int, val_bars: int, purge: int = LABEL_HORIZON):
    """Expanding-window folds whose validation blocks tile the last ``n_folds*val_bars`` rows."""
    first_val = n_rows - n_folds * val_bars
    if first_val <= purge:
        raise ValueError(f"{n_rows} rows cannot hold {n_folds} folds of {val_bars} bars")
    return [
        Fold(0, first_val + k * val_bars - purge, first_val + k * val_bars, first_val + (k + 1) * val_bars)
        for k in range(n_folds)
    ]


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
        keep = slice(max(len(bars) - window_bars, 0), len(bars))
        return cls(
            bars=bars.iloc[keep].reset_index(drop=True),
            features=features.iloc[keep],
            target=target.iloc[keep],
        )


@dataclass
class FoldOutcome:
    value: float
    penalty_reason: str | None
    metrics: dict[str, float]
    val_loss: float
    close: pd.Series  # validation-block closes, for stitching an out-of-sample equity curve
    positions: pd.Series


def labelled_windows(
    scaled: np.ndarray, y: np.ndarray, seq_len: int, start: int, end: int
) -> tuple[np.ndarray, np.ndarray]:
    """Training pairs for windows ending in [start, end) whose label is known."""
    x, ends = windows_ending_in(scaled, seq_len, start, end)
    known = ~np.isnan(y[ends])
    return x[known], y[ends][known]


def evaluate_fold(
    data: PreparedData, fold: Fold, params: HyperParams, config: PipelineConfig, objective: str
) -> FoldOutcome:
    """Train on the fold's past, predict its validation block, and backtest the positions."""
    train_feats = data.features.iloc[fold.train_start : fold.train_end]
    train_target = data.target.iloc[fold.train_start : fold.train_end]
    scaler = FeatureScaler.fit(train_feats, train_target)
    scaled = scaler.transform(data.features)
    y_all = data.target.to_numpy() / scaler.target_std
    x, y = labelled_windows(scaled, y_all, params.seq_len, fold.train_start, fold.train_end)
    result = train_new(params, x, y, seed=config.seed)
    x_val, val_ends = windows_ending_in(scaled, params.seq_len, fold.val_start, fold.val_end)
    preds = predict(result.network, x_val)
    index = data.features.index[val_ends]
    y_val = y_all[val_ends]
    finite = ~np.isnan(y_val)
    val_loss = float(np.mean((preds[finite] - y_val[finite]) ** 2))
    close = pd.Series(data.bars["close"].to_numpy()[val_ends], index=index)
    positions = positions_from_predictions(
        pd.Series(preds, index=index), [params.entry_threshold], params.long_short
    )
    pf_metrics = backtest_positions(
        close, positions, Costs(config.fees, config.slippage), year_days=config.year_days
    ).iloc[0]
    value, reason = score(pf_metrics, objective, config.min_trades)
    return FoldOutcome(
        value,
        reason,
        {k: float(v) for k, v in pf_metrics.items()},
        val_loss,
        close,
        positions.iloc[:, 0],
    )


def make_objective(data: PreparedData, config: PipelineConfig, space: dict[str, ParamSpec], objective: str):
    """An Optuna objective: mean fold score, reported fold by fold so weak trials get pruned."""
    folds = walk_forward_folds(len(data.bars), config.n_folds, config.val_bars)

    def run_trial(trial: optuna.Trial) -> float:
        params = resolve(config.hyperparams, suggest(trial, space))
        values: list[float] = []
        reasons: list[str] = []
        fold_metrics: list[dict[str, Any]] = []
        for step, fold in enumerate(folds):
            outcome = evaluate_fold(data, fold, params, config, objective)
            values.append(outcome.value)
            fold_metrics.append({**outcome.metrics, "value": outcome.value})
            if outcome.penalty_reason:
                reasons.append(f"fold {step}: {outcome.penalty_reason}")
            trial.set_user_attr("fold_metrics", fold_metrics)
            trial.set_user_attr("penalties", reasons)
            trial.report(float(np.mean(values)), step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after fold {step}")
        return float(np.mean(values))

    return run_trial
