"""What a finished search leaves beside the report: trials.csv, best_params.json, equity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from pipelines.artifacts import dump_json
from pipelines.config import PipelineConfig
from pipelines.search.backtest import Costs, run_portfolio
from pipelines.search.objective import PreparedData, evaluate_fold, walk_forward_folds
from pipelines.search.space import resolve


def write_search_outputs(
    study: optuna.Study, data: PreparedData, config: PipelineConfig, out_dir: Path, objective: str
) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    trials = study.trials_dataframe(attrs=("number", "value", "state", "params", "duration"))
    trials.to_csv(out_dir / "trials.csv", index=False)
    states = [t.state for t in study.trials]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise RuntimeError(
            f"study {study.study_name} has no completed trial ({len(study.trials)} trials: "
            "all pruned or failed); nothing to promote"
        )
    best = study.best_trial
    best_params = resolve(config.hyperparams, best.params).model_dump()
    dump_json(out_dir / "best_params.json", best_params)
    equity = best_equity(data, config, best.params, objective)
    equity.to_csv(out_dir / "best_equity.csv")
    penalized = sum(1 for t in study.trials if t.user_attrs.get("penalties"))
    return {
        "study": study.study_name,
        "best_value": float(best.value),  # type: ignore[arg-type]
        "best_trial": best.number,
        "best_params": best_params,
        "best_fold_metrics": best.user_attrs.get("fold_metrics", []),
        "n_trials": len(study.trials),
        "n_complete": len(complete),
        "n_pruned": states.count(optuna.trial.TrialState.PRUNED),
        "n_failed": states.count(optuna.trial.TrialState.FAIL),
        "n_penalized": penalized,
        "objective": objective,
    }


def best_equity(
    data: PreparedData, config: PipelineConfig, searched: dict[str, Any], objective: str
) -> pd.DataFrame:
    """Re-run the best trial's folds (seeded, so identical) and stitch its out-of-sample equity."""
    params = resolve(config.hyperparams, searched)
    folds = walk_forward_folds(len(data.bars), config.n_folds, config.val_bars)
    outcomes = [evaluate_fold(data, fold, params, config, objective) for fold in folds]
    close = pd.concat([o.close for o in outcomes])
    positions = pd.concat([o.positions for o in outcomes]).to_frame("strategy")
    portfolio = run_portfolio(close, positions, Costs(config.fees, config.slippage))
    value = portfolio.value()
    strategy = value.iloc[:, 0] if isinstance(value, pd.DataFrame) else value
    return pd.DataFrame(
        {
            "strategy": strategy,
            "buy_and_hold": close / close.iloc[0],
            "drawdown": strategy / strategy.cummax() - 1.0,
            "position": positions["strategy"],
        }
    )
