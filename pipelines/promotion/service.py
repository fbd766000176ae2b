"""Promotion: gate the run's result, then promote it (auto), propose it for review, or keep the
current config; reviews and rollbacks act on the store and rewrite production.yaml after it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.context import RunContext
from pipelines.promotion.decision import record_decision
from pipelines.promotion.gate import GateResult, gate_for_run
from pipelines.runfolder import EvaluationRecord, FinetuneRecord, RunManifest, SearchRecord
from pipelines.settings import Settings
from pipelines.store.production_file import describe_production_file, sync_production_file
from pipelines.store.repository import Repository
from pipelines.store.tables import ConfigVersion, utcnow
from pipelines.terms import KEPT, AuditAction, ConfigState, Decision, RunState

log = logging.getLogger(__name__)


def promote_run(ctx: RunContext, repo: Repository) -> dict[str, Any]:
    """Apply the gate under the model key's policy; either way leave production.yaml matching the store."""
    gate = gate_for_run(ctx)
    search = ctx.folder.read(SearchRecord)
    outcome: dict[str, Any] = {"decision": gate.decision, "gate_passed": gate.passed}
    if gate.decision in (Decision.PROMOTE, Decision.AWAITING_APPROVAL):
        proposal: dict[str, Any] = {
            "model_version": ctx.folder.read(FinetuneRecord).model_version,
            "metrics": {
                "best_value": search.best_value,
                "objective": search.objective,
                "dsr": search.dsr,
                "pbo": search.pbo,
                "holdout": ctx.folder.read(EvaluationRecord).comparison,
                "gate": gate.to_dict(),
                # what it takes to re-derive this version (retune reproduce)
                "manifest": ctx.folder.read(RunManifest).model_dump()
                if ctx.folder.has(RunManifest)
                else None,
            },
            "report_path": str(ctx.report_dir / "report.html"),
        }
        if gate.decision == Decision.PROMOTE:
            version = repo.promote(
                ctx.model_key,
                ctx.run_id,
                search.best_params,
                actor="gate:auto",
                reason="gate passed under policy auto",
                **proposal,
            )
            promoted = version.state == ConfigState.ACTIVE  # a retried run may find its version decided
            outcome.update(
                decision=Decision.PROMOTED.value
                if promoted
                else f"{KEPT}this run's version is {version.state}",
                config_version=version.version,
            )
        else:
            version = repo.propose(ctx.model_key, ctx.run_id, search.best_params, **proposal)
            outcome.update(config_version=version.version)
    log.info("%s: %s", ctx.model_key, outcome["decision"])
    sync_production_file(repo, ctx.settings.production_config)
    outcome["production_config"] = describe_production_file(
        repo, ctx.settings.production_config, ctx.model_key, why=outcome["decision"]
    )
    repo.update_run(
        ctx.run_id,
        verdict=run_verdict(ctx, gate),
        state=RunState.SUCCESS.value,
        decision=outcome["decision"][:500],
        finished_at=utcnow(),
    )
    return outcome


def _manifest(ctx: RunContext) -> dict[str, Any] | None:
    return ctx.folder.read(RunManifest).model_dump() if ctx.folder.has(RunManifest) else None


def run_verdict(ctx: RunContext, gate: GateResult) -> dict[str, Any]:
    """What decided this run, for ``status --json`` and the UI: the selection statistics with
    raw and effective N, the benchmark comparisons and every gate check with its number."""
    search = ctx.folder.read(SearchRecord)
    stats = search.statistics
    return {
        "dsr": search.dsr,
        "pbo": search.pbo,
        "n_backtests": stats.get("n_backtests_ever"),
        "n_effective": stats.get("n_effective_ever"),
        "sr0": (stats.get("dsr") or {}).get("sr0"),
        "rank_reliability": search.rank_reliability,
        "benchmark": {
            "name": ctx.config.benchmark,
            "walk_forward": stats.get("benchmark"),
            "holdout": ctx.folder.read(EvaluationRecord).benchmark,
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
        decision = _after_review(version.state)
    else:
        action = AuditAction.TIMEOUT if timed_out else AuditAction.REJECT
        version = repo.reject(model_key, run_id, actor=actor, reason=reason, action=action.value)
        if version.state in (ConfigState.REJECTED, ConfigState.EXPIRED):
            decision = f"{KEPT}approval timed out" if timed_out else f"{KEPT}rejected by {actor}"
        else:  # a timeout after someone decided through the CLI changes nothing
            decision = _after_review(version.state)
    if repo.get_run(run_id) is not None:
        repo.update_run(run_id, decision=decision)
    sync_production_file(repo, settings.production_config)
    if version.report_path:
        detail = f"v{version.version} is the active config" if version.state == ConfigState.ACTIVE else None
        record_decision(
            Path(version.report_path),
            f"{decision} ({detail})" if detail else decision,
            actor,
            reason,
            datetime.now(UTC),
        )
    log.info("%s v%s: %s (%s: %s)", model_key, version.version, decision, actor, reason)
    return version


def _after_review(state: str) -> str:
    return Decision.PROMOTED.value if state == ConfigState.ACTIVE else f"{KEPT}proposal {state}"


def rollback(
    settings: Settings, repo: Repository, model_key: str, to_version: int, *, actor: str, reason: str
):
    """Make an earlier version active again and rewrite production.yaml to match."""
    version = repo.rollback(model_key, to_version, actor=actor, reason=reason)
    sync_production_file(repo, settings.production_config)
    return version
