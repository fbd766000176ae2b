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

from models.families import IncompatibleHyperparametersError
from pipelines.config import HyperParams, PipelineConfig
from pipelines.features.core import FeatureScaler, windows_ending_in
from pipelines.param_specs import ParamSpec
from pipelines.search.benchmark import BenchmarkName, active_returns, benchmark_returns
from pipelines.search.samplers import BLOCKS_PER_FOLD
from pipelines.search.space import resolve, suggest
from pipelines.search.stats import effective_trials
from pipelines.search.strategy import StrategyGrid
from pipelines.terms import TrialAttr
from pipelines.trading.backtest import Costs, backtest_with_returns, score
from pipelines.trading.objectives import OBJECTIVES
from pipelines.training.trainer import member_next_bar, train_new
from pipelines.windowing import Fold, PreparedData, config_folds, inner_split, labelled_windows

log = logging.getLogger(__name__)

RETURNS_DIGITS = 8  # per-bar returns kept on a trial are rounded: enough for Sharpe, small in the DB
SEED_VALUES = TrialAttr.SEED_VALUES
HALF_VALUES = TrialAttr.HALF_VALUES


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
    # the same objective per variant for each seed alone (members x variants) and for two
    # disjoint halves of the seeds (2 x variants): how much of a score is the seeds'
    member_values: np.ndarray | None = None
    half_values: np.ndarray | None = None
    epochs_trained: int | None = None


def evaluate_fold(
    data: PreparedData,
    fold: Fold,
    params: HyperParams,
    config: PipelineConfig,
    objective: str,
    grid: StrategyGrid,
) -> FoldOutcome:
    """Train on the fold's past (early-stopped on its newest part), predict its validation
    block, backtest every strategy variant of the ensemble's and of each seed's predictions
    (each in units of its spread over the training windows)."""
    train_feats = data.features.iloc[fold.train_start : fold.train_end]
    train_target = data.target.iloc[fold.train_start : fold.train_end]
    scaler = FeatureScaler.fit(train_feats, train_target, config.target_per_volatility)
    scaled = scaler.transform(data.features)
    y_all = scaler.scale_target(data.target, data.features)
    x, y = labelled_windows(
        scaled, y_all, params.seq_len, fold.train_start, fold.train_end, config.label_horizon
    )
    x_fit, y_fit, x_inner, y_inner = inner_split(x, y, config.inner_val_fraction, config.label_horizon)
    result = train_new(
        params,
        x_fit,
        y_fit,
        seed=config.seed,
        members=config.seeds_per_trial,
        x_val=x_inner,
        y_val=y_inner,
        patience=config.early_stopping_patience if x_inner is not None else None,
        horizon_weights=config.horizon_loss_weights,
    )
    x_val, val_ends = windows_ending_in(scaled, params.seq_len, fold.val_start, fold.val_end)
    members = member_next_bar(result.network, x_val)
    preds = members.mean(axis=0)  # the ensemble's prediction: what trades
    index = data.features.index[val_ends]
    y_val = y_all[val_ends]
    finite = ~np.isnan(y_val)
    val_loss = float(np.mean((preds[finite] - y_val[finite]) ** 2))
    close = pd.Series(data.bars["close"].to_numpy()[val_ends], index=index)
    sets = prediction_sets(preds, members)
    # each set read in units of its own spread over the fold's training windows, as the deployed
    # model reads its predictions (``FeatureScaler.signal``)
    fitted = member_next_bar(result.network, x_fit)
    fitted_sets = prediction_sets(fitted.mean(axis=0), fitted)
    signals = [scaler.with_prediction_spread(f).signal(p) for f, p in zip(fitted_sets, sets, strict=True)]
    positions = pd.concat([grid.positions(pd.Series(p, index=index)) for p in signals], axis=1)
    positions.columns = pd.RangeIndex(positions.shape[1], name="variant")
    metrics, returns = backtest_with_returns(
        close, positions, Costs(config.fees, config.slippage), config.annualization(data.bars["timestamp"])
    )
    scored = [score(row, objective, config.min_trades) for _, row in metrics.iterrows()]
    values = np.array([v for v, _ in scored]).reshape(len(sets), grid.size)
    ensemble = slice(0, grid.size)
    k = len(members) if len(sets) > 1 else 0
    return FoldOutcome(
        metrics=metrics.iloc[ensemble].reset_index(drop=True),
        returns=returns[:, ensemble],
        values=values[0],
        penalties=[r for _, r in scored[ensemble]],
        val_loss=val_loss,
        close=close,
        positions=positions.iloc[:, ensemble],
        member_values=values[1 : 1 + k] if k else None,
        half_values=values[1 + k :] if k else None,
        epochs_trained=len(result.history),
    )


def block_values(
    outcome: FoldOutcome, variant: int, risk_adjusted: bool, bars_per_year: float
) -> list[float]:
    """What each time block of a fold's validation block adds to the objective, for the paired
    pruner: a block's mean return over the fold's standard deviation, annualized (the fold's
    Sharpe is their mean), or its annualized mean return for an objective without risk. A fold
    the objective penalized (no trades, no variance) reports its penalty in every block."""
    if outcome.penalties[variant] is not None:
        return [float(outcome.values[variant])] * BLOCKS_PER_FOLD
    returns = np.nan_to_num(outcome.returns[:, variant])
    scale = bars_per_year
    if risk_adjusted:
        std = float(returns.std(ddof=1))
        scale = np.sqrt(bars_per_year) / std if std > 0 else 0.0
    return [float(block.mean() * scale) for block in np.array_split(returns, BLOCKS_PER_FOLD)]


def prediction_sets(ensemble: np.ndarray, members: np.ndarray) -> list[np.ndarray]:
    """What a fold backtests: the ensemble's predictions, then (with several seeds) each
    member's, then the means of two disjoint halves of the members."""
    if len(members) < 2:
        return [ensemble]
    half = len(members) // 2
    return [ensemble, *members, members[:half].mean(axis=0), members[half:].mean(axis=0)]


def make_objective(
    data: PreparedData,
    config: PipelineConfig,
    space: dict[str, ParamSpec],
    objective: str,
    grid: StrategyGrid,
):
    """An Optuna objective: the best strategy variant's mean fold score.

    Reported fold by fold so weak trials get pruned: the running mean for the median and
    Hyperband pruners; for the Wilcoxon pruner, which pairs trials instance by instance, what
    each time block of the fold adds to the objective (``block_values``).
    """
    folds = config_folds(len(data.bars), config)
    paired = config.pruner == "wilcoxon"
    bars_per_year = config.annualization(data.bars["timestamp"])

    def run_trial(trial: optuna.Trial) -> float:
        params = resolve(config.hyperparams, suggest(trial, space))
        if TrialAttr.TRAIN_FAMILY in trial.user_attrs:  # the baseline reference, or production's own family
            params = params.model_copy(update={"model_family": trial.user_attrs[TrialAttr.TRAIN_FAMILY]})
        trial.set_user_attr(TrialAttr.MODEL_FAMILY, params.model_family)
        trial.set_user_attr(TrialAttr.N_VARIANTS, grid.size)
        values = np.empty((0, grid.size))
        outcomes: list[FoldOutcome] = []
        for step, fold in enumerate(folds):
            try:
                outcome = evaluate_fold(data, fold, params, config, objective, grid)
            except IncompatibleHyperparametersError as exc:  # e.g. nhead 3 with d_model 32
                trial.set_user_attr("penalties", [f"not buildable: {exc}"])
                raise optuna.TrialPruned(f"not buildable: {exc}") from None
            outcomes.append(outcome)
            values = np.vstack([values, outcome.values])
            chosen = int(np.argmax(values.mean(axis=0)))
            if paired:
                blocks = block_values(outcome, chosen, OBJECTIVES[objective].needs_variance, bars_per_year)
                for block, value in enumerate(blocks):
                    trial.report(value, step * BLOCKS_PER_FOLD + block)
            else:
                trial.report(float(values[:, chosen].mean()), step)
            # after the last fold there is nothing left to save: pruning then would only throw
            # a complete candidate away (seen: trials pruned "after 4 of 4 folds")
            if step < len(folds) - 1 and trial.should_prune():
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
    trial.set_user_attr(TrialAttr.STRATEGY, grid.variant(chosen))
    trial.set_user_attr(TrialAttr.N_EFFECTIVE_VARIANTS, round(variant_bets(outcomes, benchmark), 3))
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
    trial.set_user_attr(TrialAttr.EPOCHS_TRAINED, [o.epochs_trained for o in outcomes])
    if outcomes and outcomes[0].member_values is not None:
        # each seed set scored as the trial is scored: its best variant's mean over the folds
        trial.set_user_attr(SEED_VALUES, _best_variant_means([o.member_values for o in outcomes]))
        trial.set_user_attr(HALF_VALUES, _best_variant_means([o.half_values for o in outcomes]))


def folds_value(trial: optuna.trial.FrozenTrial) -> float | None:
    """A trial's objective over the folds it ran: its value when complete; for a pruned trial,
    what Optuna does not keep (its stored value is the last one reported to the pruner, for the
    paired pruner one time block's). None before any fold is in."""
    folds = trial.user_attrs.get(TrialAttr.FOLD_METRICS) or []
    return float(np.mean([f["value"] for f in folds])) if folds else None


def _best_variant_means(per_fold: list) -> list[float]:
    """(sets x variants) per fold -> each set's best variant's mean over folds."""
    means = np.mean(np.stack(per_fold), axis=0)  # sets x variants
    return [round(float(v), 6) for v in means.max(axis=1)]


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
