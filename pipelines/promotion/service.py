"""Promotion: gate the run's result, then promote it (auto), propose it for review, or keep the
current config; reviews and rollbacks act on the store and rewrite production.yaml after it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.artifacts import dump_json, load_json
from pipelines.context import RunContext
from pipelines.promotion.gate import GateResult, evaluate_gate
from pipelines.promotion.production_file import describe_production_file, sync_production_file
from pipelines.reporting.decision import record_decision
from pipelines.settings import Settings
from pipelines.store.repository import Repository
from pipelines.store.tables import ConfigVersion

log = logging.getLogger(__name__)


def gate_for_run(ctx: RunContext) -> GateResult:
    search = load_json(ctx.run_dir / "search.json")
    folds = search.get("best_fold_metrics", [])
    return evaluate_gate(
        best_value=search["best_value"],
        objective=search["objective"],
        n_complete=search["n_complete"],
        best_trades=sum(m.get("n_trades", 0) for m in folds),
        min_trades=ctx.config.min_trades,
        dsr=(search["statistics"].get("dsr") or {}).get("dsr"),
        dsr_threshold=ctx.config.dsr_threshold,
        worst_drawdown=min((m.get("max_drawdown", 0.0) for m in folds), default=0.0),
        max_drawdown_limit=ctx.config.max_drawdown_limit,
        evaluation=load_json(ctx.run_dir / "evaluation.json"),
        policy=ctx.config.promotion_policy,
        walk_forward_benchmark=search["statistics"].get("benchmark"),
        benchmark_alpha=ctx.config.benchmark_alpha,
        holdout_benchmark_alpha=ctx.config.holdout_benchmark_alpha,
    )


def promote_run(ctx: RunContext, repo: Repository) -> dict[str, Any]:
    """Apply the gate under the model key's policy; either way leave production.yaml matching the store."""
    gate = gate_for_run(ctx)
    dump_json(ctx.run_dir / "gate.json", gate.to_dict())
    outcome: dict[str, Any] = {"decision": gate.decision, "gate_passed": gate.passed}
    if gate.decision in ("promote", "awaiting approval"):
        search = load_json(ctx.run_dir / "search.json")
        model = load_json(ctx.run_dir / "finetune.json")
        stats = search["statistics"]
        proposal = {
            "model_version": model["model_version"],
            "metrics": {
                "best_value": search["best_value"],
                "objective": search["objective"],
                "dsr": (stats.get("dsr") or {}).get("dsr"),
                "pbo": (stats.get("pbo") or {}).get("pbo"),
                "holdout": load_json(ctx.run_dir / "evaluation.json")["comparison"],
                "gate": gate.to_dict(),
            },
            "report_path": str(ctx.report_dir / "report.html"),
        }
        if gate.decision == "promote":
            version = repo.promote(
                ctx.model_key,
                ctx.run_id,
                search["best_params"],
                actor="gate:auto",
                reason="gate passed under policy auto",
                **proposal,
            )
            promoted = version.state == "active"  # a retried run may find its version decided already
            outcome.update(
                decision="promoted" if promoted else f"kept: this run's version is {version.state}",
                config_version=version.version,
            )
        else:
            version = repo.propose(ctx.model_key, ctx.run_id, search["best_params"], **proposal)
            outcome.update(config_version=version.version)
    log.info("%s: %s", ctx.model_key, outcome["decision"])
    sync_production_file(repo, ctx.settings.production_config)
    outcome["production_config"] = describe_production_file(
        repo, ctx.settings.production_config, ctx.model_key, why=outcome["decision"]
    )
    repo.update_run(ctx.run_id, verdict=run_verdict(ctx, gate))
    return outcome


def run_verdict(ctx: RunContext, gate: GateResult) -> dict[str, Any]:
    """What decided this run, for ``status --json`` and the UI: the selection statistics with
    raw and effective N, the benchmark comparisons and every gate check with its number."""
    search = load_json(ctx.run_dir / "search.json")
    stats = search["statistics"]
    return {
        "dsr": (stats.get("dsr") or {}).get("dsr"),
        "pbo": (stats.get("pbo") or {}).get("pbo"),
        "n_backtests": stats.get("n_backtests_ever"),
        "n_effective": stats.get("n_effective_ever"),
        "sr0": (stats.get("dsr") or {}).get("sr0"),
        "rank_reliability": search.get("rank_reliability"),
        "benchmark": {
            "name": ctx.config.benchmark,
            "walk_forward": stats.get("benchmark"),
            "holdout": load_json(ctx.run_dir / "evaluation.json").get("benchmark"),
        },
        "gate": gate.to_dict(),
    }


def review(
    settings: Settings,
    repo: Repository,
    model_key: str,
    run_id: str,
    *,
    approve: bool,
    actor: str,
    reason: str,
    timed_out: bool = False,
) -> ConfigVersion:
    """Record a person's (or a timeout's) answer to a proposal and bring production.yaml along."""
    if approve:
        version = repo.approve(model_key, run_id, actor=actor, reason=reason)
        decision = "promoted" if version.state == "active" else f"kept: proposal {version.state}"
    else:
        action = "timeout" if timed_out else "reject"
        version = repo.reject(model_key, run_id, actor=actor, reason=reason, action=action)
        if version.state in ("rejected", "expired"):
            decision = "kept: approval timed out" if timed_out else f"kept: rejected by {actor}"
        else:  # a timeout after someone decided through the CLI changes nothing
            decision = "promoted" if version.state == "active" else f"kept: proposal {version.state}"
    if repo.get_run(run_id) is not None:
        repo.update_run(run_id, decision=decision)
    sync_production_file(repo, settings.production_config)
    if version.report_path:
        detail = f"v{version.version} is the active config" if version.state == "active" else None
        record_decision(
            Path(version.report_path),
            f"{decision} ({detail})" if detail else decision,
            actor,
            reason,
            datetime.now(UTC),
        )
    log.info("%s v%s: %s (%s: %s)", model_key, version.version, decision, actor, reason)
    return version


def rollback(
    settings: Settings, repo: Repository, model_key: str, to_version: int, *, actor: str, reason: str
):
    """Make an earlier version active again and rewrite production.yaml to match."""
    version = repo.rollback(model_key, to_version, actor=actor, reason=reason)
    sync_production_file(repo, settings.production_config)
    return version
