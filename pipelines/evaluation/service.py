"""The evaluate step's work: champion vs challenger on the holdout, and the parity check."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from models.checkpoint import CheckpointError
from pipelines.config import HyperParams
from pipelines.context import RunContext
from pipelines.evaluation.holdout import compare, score_holdout, unopposed
from pipelines.evaluation.parity import check_parity
from pipelines.predictor import LivePredictor
from pipelines.runfolder import EvaluationRecord, FinetuneRecord, SearchRecord
from pipelines.store.repository import Repository
from pipelines.store.tables import ModelVersion

log = logging.getLogger(__name__)


def evaluate_run(ctx: RunContext, repo: Repository, bars: pd.DataFrame, features: pd.DataFrame) -> dict:
    """Score both models on the holdout (the last ``holdout_bars`` bars) and check the
    challenger's live path against its training path there."""
    config, objective = ctx.config, ctx.params.objective
    start = len(bars) - config.holdout_bars
    holdout_start = pd.Timestamp(bars["timestamp"].iloc[start])
    best_params = ctx.folder.read(SearchRecord).best_params
    new_version = repo.get_model_version(ctx.model_key, ctx.folder.read(FinetuneRecord).model_version)
    assert new_version is not None, "the finetune step registered this run's model"
    challenger = _predictor(ctx.model_key, new_version, best_params)
    challenger_score = score_holdout(challenger, bars, features, start, config, objective)
    notes: list[str] = []
    champion_score = None
    active = repo.active_config(ctx.model_key)
    deployed = repo.deployed_model(ctx.model_key)
    if active is None or deployed is None:
        comparison = unopposed("no deployed model yet: the challenger is the first")
    else:
        try:
            champion = _predictor(ctx.model_key, deployed, active.params, config_version=active.version)
        except (CheckpointError, ValueError) as exc:  # tampered, other features, or stale params
            comparison = unopposed(f"the deployed model v{deployed.version} cannot run: {exc}")
        else:
            champion_score = score_holdout(champion, bars, features, start, config, objective)
            comparison = compare(challenger_score, champion_score, config)
            if deployed.data_end is not None and _naive(deployed.data_end) >= holdout_start:
                notes.append(
                    f"the champion v{deployed.version} was trained on bars up to "
                    f"{deployed.data_end:%Y-%m-%d}, inside the holdout (from {holdout_start:%Y-%m-%d}): "
                    "its holdout score is optimistic"
                )
    parity = check_parity(challenger, bars, features, start)
    log.info("evaluate: %s; parity max diff %.2g", comparison.reason, parity.max_prediction_diff)
    return {
        "holdout": {
            "start": str(holdout_start),
            "end": str(bars["timestamp"].iloc[-1]),
            "n_bars": config.holdout_bars,
            "n_folds": config.holdout_folds,
            "objective": objective,
        },
        "challenger": challenger_score.to_dict(),
        "benchmark": challenger_score.against_benchmark(config.benchmark).to_dict(),
        "champion": champion_score.to_dict() if champion_score else None,
        "comparison": comparison.to_dict(),
        "parity": parity.to_dict(),
        "notes": notes,
    }


def _predictor(
    model_key: str, version: ModelVersion, params: dict[str, Any], **versions: Any
) -> LivePredictor:
    return LivePredictor.from_checkpoint(
        Path(version.checkpoint_path),
        version.sha256,
        HyperParams(**params),
        model_key,
        model_version=version.version,
        **versions,
    )


def _naive(moment) -> pd.Timestamp:
    """Bars are naive UTC; PostgreSQL hands datetimes back time-zone aware."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_convert(None) if stamp.tzinfo is not None else stamp


def evaluate_step(ctx: RunContext, repo: Repository) -> dict[str, Any]:
    """The evaluate step: score the run's holdout, keep ``evaluation.json``, return its summary."""
    bars = pd.read_parquet(ctx.folder.bars)
    features = pd.read_parquet(ctx.folder.features).drop(columns="next_return")
    record = EvaluationRecord(**evaluate_run(ctx, repo, bars, features))
    ctx.folder.write(record)
    comparison, parity = record.comparison, record.parity
    return {
        "challenger_wins": comparison["challenger_wins"],
        "reason": comparison["reason"],
        "parity_passed": parity["passed"],
        "parity_max_diff": parity["max_prediction_diff"],
    }
