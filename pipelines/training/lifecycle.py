"""Train the chosen configuration, or fine-tune the deployed model, and register the result.

Fine-tuning needs the same architecture and features as the parent; otherwise (or on weekly
runs) the model is trained from scratch, and the result says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from models.adaptive_training import adaptive_rules
from models.checkpoint import load_checkpoint, save_checkpoint
from models.families import get_family
from models.training_options import TrainingOptions
from pipelines.artifacts import dump_json
from pipelines.config import HyperParams, PipelineConfig
from pipelines.context import RunContext
from pipelines.features.core import FeatureScaler, feature_fingerprint, feature_kinds, model_features
from pipelines.runfolder import FinetuneRecord, SearchRecord
from pipelines.store.repository import Repository
from pipelines.store.tables import ModelVersion
from pipelines.training.trainer import TrainResult, architecture, fit, member_next_bar, train_new
from pipelines.windowing import PreparedData, labelled_windows, run_data

log = logging.getLogger(__name__)


def train_or_finetune(
    ctx: RunContext, repo: Repository, data: PreparedData, best: dict[str, Any]
) -> dict[str, Any]:
    done = repo.model_for_run(ctx.model_key, ctx.run_id)
    if done is not None:  # an Airflow retry: the version is registered already
        return {**_describe(done), "history": done.metrics.get("history", [])}
    params = HyperParams(**best)
    n = len(data.bars)
    parent = repo.deployed_model(ctx.model_key)
    spec = architecture(
        params, len(model_features(data.features)), ctx.config.label_horizon, ctx.config.seeds_per_trial
    )
    reason = _why_not_finetune(ctx, parent, spec)
    cfg = ctx.config
    if reason is None:
        assert parent is not None
        checkpoint = load_checkpoint(Path(parent.checkpoint_path), parent.sha256, feature_fingerprint())
        scaler = FeatureScaler.from_dict(checkpoint.meta["scaler"])
        log.info("finetune: model v%s", parent.version)
        trained = finetune_model(checkpoint.network, scaler, data, params, cfg)
        how = "finetune"
    else:
        log.info("train from scratch: %s", reason)
        trained = train_from_scratch(data, params, cfg, cfg.window_bars)
        how = "scratch"
    result, scaler, window = trained.result, trained.scaler, (trained.start, n)
    directory = ctx.settings.models_dir / ctx.model_key / ctx.run_id
    timestamps = data.features.index
    meta = {
        "model_key": ctx.model_key,
        "params": params.model_dump(),
        "scaler": scaler.to_dict(),
        "feature_fingerprint": feature_fingerprint(),
        "feature_kinds": feature_kinds(scaler.features),
        "horizon_loss_weights": list(cfg.horizon_loss_weights),
        "trained_how": how,
        "source_run": ctx.run_id,
        "data_start": str(timestamps[window[0]]),
        "data_end": str(timestamps[window[1] - 1]),
        "parent_version": parent.version if parent and how == "finetune" else None,
    }
    sha = save_checkpoint(directory, result.network, spec, meta)
    version = repo.add_model_version(
        ctx.model_key,
        ctx.run_id,
        parent_version=meta["parent_version"],
        family=params.model_family,
        params=params.model_dump(),
        feature_fingerprint=feature_fingerprint(),
        checkpoint_path=str(directory),
        sha256=sha,
        trained_how=how,
        data_start=timestamps[window[0]].to_pydatetime(),
        data_end=timestamps[window[1] - 1].to_pydatetime(),
        metrics={
            "best_val_loss": result.best_val_loss,
            "best_epoch": result.best_epoch,
            "stopped_early": result.stopped_early,
            "history": result.history,
            "scratch_reason": reason,
            "horizon_loss_weights": list(cfg.horizon_loss_weights),
            "feature_kinds": feature_kinds(scaler.features),
            "members": spec.members,
            "family_report": get_family(params.model_family).report(result.network),
            "adaptations": result.adaptations,
            **trained.settings,
        },
    )
    return {**_describe(version), "history": result.history}


def finetune_step(ctx: RunContext, repo: Repository) -> dict[str, Any]:
    """The finetune step: train or fine-tune with the search's best params; keep its record."""
    best = ctx.folder.read(SearchRecord).best_params
    result = train_or_finetune(ctx, repo, run_data(ctx.folder, ctx.config, full=True), best)
    ctx.folder.write(FinetuneRecord(**result))
    dump_json(ctx.report_dir / "finetune_history.json", result["history"])
    return {k: v for k, v in result.items() if k != "history"}


@dataclass
class Trained:
    result: TrainResult
    scaler: FeatureScaler
    start: int  # first bar of the training window
    settings: dict[str, Any]


def finetune_model(
    network: nn.Module, scaler: FeatureScaler, data: PreparedData, params: HyperParams, cfg: PipelineConfig
) -> Trained:
    """Continue training ``network`` on the latest ``finetune_bars`` (plus replayed older
    windows) at a reduced learning rate, first layers frozen, early-stopped on the newest bars."""
    n = len(data.bars)
    start = max(n - cfg.finetune_bars, 0)
    split = n - max(cfg.finetune_bars // 5, 20)
    x, y, x_val, y_val = _train_val_windows(data, scaler, params.seq_len, start, split, cfg.label_horizon)
    x, y, n_replay = _with_replay(data, scaler, params.seq_len, start, x, y, cfg)
    lr = params.lr * cfg.finetune_lr_ratio
    # the family says which layers are backbone (a linear model has none to freeze)
    frozen = min(cfg.freeze_backbone_layers, len(get_family(params.model_family).backbone_layers(network)))
    log.info(
        "finetune on %d bars (+%d replayed windows) at lr %.2g, %d layer(s) frozen",
        n - start,
        n_replay,
        lr,
        frozen,
    )
    result = fit(
        network,
        x,
        y,
        lr=lr,
        epochs=cfg.finetune_epochs,
        batch_size=params.batch_size,
        seed=cfg.seed,
        x_val=x_val,
        y_val=y_val,
        patience=cfg.finetune_patience,
        frozen_layers=frozen,
        horizon_weights=cfg.horizon_loss_weights,
        options=TrainingOptions.from_values(params.model_dump()),
        family=params.model_family,
        rules=adaptive_rules(cfg.adaptive_rules),
    )
    scaler = spread_of(result.network, scaler, x)
    return Trained(result, scaler, start, {"lr": lr, "replayed_windows": n_replay, "frozen_layers": frozen})


def train_from_scratch(
    data: PreparedData, params: HyperParams, cfg: PipelineConfig, window_bars: int
) -> Trained:
    """A new network on the last ``window_bars`` bars, scaler fitted on its training part,
    trained as the search's folds are: early-stopped on the newest ``val_bars``, or with
    ``inner_val_fraction: 0`` fitted on every bar for ``epochs`` (the newest too)."""
    n = len(data.bars)
    start = max(n - window_bars, 0)
    split = n if cfg.inner_val_fraction == 0 else n - cfg.val_bars
    train_part = slice(start, split - cfg.label_horizon)
    scaler = FeatureScaler.fit(
        data.features.iloc[train_part], data.target.iloc[train_part], cfg.target_per_volatility
    )
    x, y, x_val, y_val = _train_val_windows(data, scaler, params.seq_len, start, split, cfg.label_horizon)
    log.info("train from scratch on %d bars", n - start)
    result = train_new(
        params,
        x,
        y,
        seed=cfg.seed,
        members=cfg.seeds_per_trial,
        x_val=x_val,
        y_val=y_val,
        patience=cfg.finetune_patience,
        horizon_weights=cfg.horizon_loss_weights,
        rules=adaptive_rules(cfg.adaptive_rules),
    )
    scaler = spread_of(result.network, scaler, x)
    return Trained(result, scaler, start, {"lr": params.lr, "replayed_windows": 0, "frozen_layers": 0})


def spread_of(network: nn.Module, scaler: FeatureScaler, x: np.ndarray) -> FeatureScaler:
    """``scaler`` carrying the spread of the trained ``network``'s next-bar predictions (its
    members' mean) over its training windows ``x``, the unit its entry threshold is read in."""
    return scaler.with_prediction_spread(member_next_bar(network, x).mean(axis=0))


def _train_val_windows(
    data: PreparedData, scaler: FeatureScaler, seq_len: int, start: int, split: int, horizons: int
):
    """Train on windows ending in [start, split - purge), validate on those ending at or after split."""
    scaled = scaler.transform(data.features)
    y = scaler.scale_target(data.target, data.features)
    x_train, y_train = labelled_windows(scaled, y, seq_len, start, split - horizons, horizons)
    x_val, y_val = labelled_windows(scaled, y, seq_len, split, len(scaled), horizons)
    return x_train, y_train, x_val, y_val


def _with_replay(data: PreparedData, scaler: FeatureScaler, seq_len: int, start: int, x, y, cfg):
    """Add a seeded sample of windows from before the fine-tune window, so the model keeps
    what it knew about older regimes (limits catastrophic forgetting)."""
    wanted = round(cfg.finetune_replay_fraction * len(x))
    older_start = max(start - cfg.window_bars, 0)
    if wanted == 0 or start - cfg.label_horizon <= older_start:
        return x, y, 0
    scaled = scaler.transform(data.features)
    target = scaler.scale_target(data.target, data.features)
    x_old, y_old = labelled_windows(
        scaled, target, seq_len, older_start, start - cfg.label_horizon, cfg.label_horizon
    )
    pick = np.random.default_rng(cfg.seed).choice(len(x_old), size=min(wanted, len(x_old)), replace=False)
    return np.concatenate([x, x_old[pick]]), np.concatenate([y, y_old[pick]]), len(pick)


def _why_not_finetune(ctx: RunContext, parent: ModelVersion | None, spec) -> str | None:
    if parent is None:
        return "no deployed model for this model key (no config version is active)"
    if ctx.dag == "weekly":
        return "weekly runs retrain fully"
    if parent.feature_fingerprint != feature_fingerprint():
        return "the feature definition changed since the deployed model was trained"
    horizons = len(parent.metrics.get("horizon_loss_weights", [1.0]))
    members = parent.metrics.get("members", 1)
    deployed = architecture(HyperParams(**parent.params), spec.n_features, horizons, members)
    changed = deployed.shape_differences(spec)
    if changed:
        return f"the chosen architecture differs from the deployed model ({', '.join(changed)})"
    return None


def _describe(version: ModelVersion) -> dict[str, Any]:
    return {
        "model_version": version.version,
        "parent_version": version.parent_version,
        "trained_how": version.trained_how,
        "reason": version.metrics.get("scratch_reason"),
        "checkpoint": version.checkpoint_path,
        "best_val_loss": version.metrics.get("best_val_loss"),
        **{k: version.metrics.get(k) for k in ("lr", "frozen_layers", "replayed_windows")},
        # what the family reports (e.g. MoE expert usage) and what adaptive rules changed
        **{k: version.metrics.get(k) for k in ("family_report", "adaptations")},
    }
