"""What a finished search leaves beside the report.

``trials.csv``, ``best_params.json``, ``best_config.json`` (the fixed config plus the chosen
params, in the seed format: ``retune run --config best_config.json`` trains with it), the best
trial's out-of-sample equity, and the study plots as standalone HTML files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from pipelines.artifacts import dump_json
from pipelines.config import PipelineConfig
from pipelines.search.objective import evaluate_fold, fold_benchmark_returns, folds_value
from pipelines.search.racing import race
from pipelines.search.reliability import rank_reliability
from pipelines.search.selection import degenerate_audit, selection_statistics
from pipelines.search.space import resolve
from pipelines.search.strategy import StrategyGrid
from pipelines.search.study import best_fresh_trial, fresh_trials
from pipelines.terms import TrialAttr
from pipelines.trading.backtest import Costs, run_portfolio
from pipelines.windowing import PreparedData, config_folds

log = logging.getLogger(__name__)

PLOTS: dict[str, Callable[[optuna.Study], Any]] = {
    "optimization_history": optuna.visualization.plot_optimization_history,
    "param_importances": optuna.visualization.plot_param_importances,
    "parallel_coordinate": optuna.visualization.plot_parallel_coordinate,
}


def chosen_params(config: PipelineConfig, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """Fixed values, overridden by the trial's searched model params, its chosen strategy and
    the family it trained (a baseline trial's is not the config's)."""
    family = (
        {"model_family": trial.user_attrs[TrialAttr.MODEL_FAMILY]}
        if TrialAttr.MODEL_FAMILY in trial.user_attrs
        else {}
    )
    values = {**trial.params, **trial.user_attrs.get(TrialAttr.STRATEGY, {}), **family}
    return resolve(config.hyperparams, values).model_dump()


def best_config(config: PipelineConfig, params: dict[str, Any]) -> dict[str, Any]:
    """The run's config with the chosen params fixed and nothing left to search."""
    fixed = config.model_dump(mode="json", exclude={"hyperparams", "search_space"})
    return {**fixed, **params}


def write_search_outputs(
    study: optuna.Study,
    data: PreparedData,
    config: PipelineConfig,
    out_dir: Path,
    objective: str,
    population: Sequence[Any] = (),
    family: str = "lstm",
) -> dict[str, Any]:
    """Write the search's files and return its summary, the selection statistics included
    (``population``: the earlier searches of this model key and family, from the ledger)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    trial_table(study).to_csv(out_dir / "trials.csv", index=False)
    audit = degenerate_audit(study)
    raced = race(study, data, config, config.race_top_k, config.race_seeds) if config.race_seeds else None
    best = _by_number(study, raced.selected) if raced else best_fresh_trial(study)
    if best is None:
        raise RuntimeError(
            f"study {study.study_name} has no completed trial of its own ({audit}); nothing to promote"
        )
    best_params = chosen_params(config, best)
    dump_json(out_dir / "best_params.json", best_params)
    dump_json(out_dir / "best_config.json", best_config(config, best_params))
    equity = best_equity(data, config, best_params, objective)
    equity.to_csv(out_dir / "best_equity.csv")
    plots = write_plots(study, out_dir / "plots")
    statistics = selection_statistics(
        study,
        best,
        fold_benchmark_returns(data, config),
        config.benchmark,
        population,
        family,
        config.pbo_splits,
        exposure=float((equity["position"] != 0).mean()),
        extra_backtests=raced.retrainings if raced else 0,
    )
    return {
        "study": study.study_name,
        "best_value": float(best.value),  # type: ignore[arg-type]
        "best_trial": best.number,
        "best_params": best_params,
        "best_fold_metrics": best.user_attrs.get(TrialAttr.FOLD_METRICS, []),
        "n_trials": audit["trials"],
        "n_complete": sum(1 for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
        - audit["carried_over"],
        "n_pruned": audit["pruned"],
        "n_failed": audit["failed"],
        "n_penalized": sum(1 for t in study.trials if t.user_attrs.get(TrialAttr.PENALTIES)),
        "audit": audit,
        "statistics": statistics,
        "race": raced.to_dict() if raced else None,
        "rank_reliability": rank_reliability(fresh_trials(study)),
        "plots": plots,
        "objective": objective,
    }


def trial_table(study: optuna.Study) -> pd.DataFrame:
    """``trials.csv``: a row per trial, its per-bar returns left out. A pruned trial's ``value``
    is its objective over the ``folds_run`` it ran (``folds_value``): the value Optuna keeps for
    it read as a score above every complete trial's."""
    trials = study.trials_dataframe(attrs=("number", "value", "state", "params", "duration", "user_attrs"))
    if trials.empty:
        return trials
    frozen = study.get_trials(deepcopy=False)  # one storage read, in the dataframe's row order
    trials["folds_run"] = [len(t.user_attrs.get(TrialAttr.FOLD_METRICS, [])) for t in frozen]
    for row, trial in enumerate(frozen):
        if trial.state == optuna.trial.TrialState.PRUNED:
            trials.loc[row, "value"] = folds_value(trial)
    return trials.drop(columns=[c for c in trials if c.endswith(("fold_returns", "fold_metrics"))])


def _by_number(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    return next(t for t in study.trials if t.number == number)


def write_plots(study: optuna.Study, out_dir: Path) -> dict[str, str]:
    """Each study plot as an HTML file sharing one plotly.min.js (works offline)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    for name, plot in PLOTS.items():
        try:
            fig = plot(study)
        except (RuntimeError, ValueError, ZeroDivisionError) as exc:  # e.g. too few trials
            log.info("no %s plot: %s", name, exc)
            continue
        path = out_dir / f"{name}.html"
        fig.write_html(path, include_plotlyjs="directory")
        written[name] = path.name
    return written


def best_equity(
    data: PreparedData, config: PipelineConfig, params: dict[str, Any], objective: str
) -> pd.DataFrame:
    """Re-run the best trial's folds (seeded, so identical) and stitch its out-of-sample equity."""
    hyper = resolve(config.hyperparams, params)
    grid = StrategyGrid((hyper.entry_threshold,), (hyper.long_short,))
    outcomes = [
        evaluate_fold(data, fold, hyper, config, objective, grid)
        for fold in config_folds(len(data.bars), config)
    ]
    close = pd.concat([o.close for o in outcomes])
    positions = pd.concat([o.positions.iloc[:, 0] for o in outcomes]).to_frame("strategy")
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
