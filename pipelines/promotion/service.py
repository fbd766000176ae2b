"""Promotion: gate the run's result, activate it in the store, then rewrite production.yaml."""

from __future__ import annotations

import logging
from typing import Any

from pipelines.artifacts import dump_json, load_json
from pipelines.context import RunContext
from pipelines.promotion.gate import GateResult, evaluate_gate
from pipelines.promotion.production_file import sync_production_file
from pipelines.store.repository import Repository

log = logging.getLogger(__name__)


def gate_for_run(ctx: RunContext) -> GateResult:
    search = load_json(ctx.run_dir / "search.json")
    trades = sum(m.get("n_trades", 0) for m in search.get("best_fold_metrics", []))
    return evaluate_gate(
        best_value=search["best_value"],
        objective=search["objective"],
        n_complete=search["n_complete"],
        best_trades=trades,
        min_trades=ctx.config.min_trades,
        dsr=(search["statistics"].get("dsr") or {}).get("dsr"),
        dsr_threshold=ctx.config.dsr_threshold,
        policy="auto",
    )


def promote_run(ctx: RunContext, repo: Repository) -> dict[str, Any]:
    """Promote when the gate passes; either way leave production.yaml matching the store."""
    gate = gate_for_run(ctx)
    dump_json(ctx.run_dir / "gate.json", gate.to_dict())
    outcome: dict[str, Any] = {"decision": gate.decision, "gate_passed": gate.passed}
    if gate.decision == "promote":
        search = load_json(ctx.run_dir / "search.json")
        model = load_json(ctx.run_dir / "finetune.json")
        version = repo.promote(
            ctx.model_key,
            ctx.run_id,
            search["best_params"],
            actor="gate:auto",
            reason="gate passed under policy auto",
            model_version=model["model_version"],
            metrics={
                "best_value": search["best_value"],
                "objective": search["objective"],
                "dsr": (search["statistics"].get("dsr") or {}).get("dsr"),
                "pbo": (search["statistics"].get("pbo") or {}).get("pbo"),
            },
            report_path=str(ctx.report_dir / "report.html"),
        )
        outcome.update(decision="promoted", config_version=version.version)
        log.info("promoted config v%s for %s", version.version, ctx.model_key)
    else:
        log.info("kept the current config for %s: %s", ctx.model_key, gate.decision)
    sync_production_file(repo, ctx.settings.production_config)
    outcome["production_config"] = str(ctx.settings.production_config)
    return outcome
