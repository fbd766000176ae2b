"""The ``status --json`` payload: active config, versions and runs, one shape for the CLI and the UI."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pipelines.settings import load_settings
from pipelines.store.migrate import upgrade
from pipelines.store.production_file import describe_production_file, sync_production_file
from pipelines.store.repository import Repository


def status_payload(limit: int = 20, repair: bool = True) -> dict[str, Any]:
    """The ``status --json`` object (README "Running it"): active config, versions, runs.

    With ``repair`` it first migrates the store and rewrites production.yaml if a crash left it
    behind the store; readers that must not write (the UI) pass ``repair=False``.
    """
    settings = load_settings()
    if repair:
        upgrade(settings.db_url)
    repo = Repository(settings.db_url)
    try:
        if repair:
            sync_production_file(repo, settings.production_config)  # repairs a missed file write
        actives = repo.all_active_configs()
        active = [
            {
                "model_key": a.model_key,
                "version": a.version,
                "params": a.params,
                "model_version": a.model_version,
                "promoted_at": iso(a.promoted_at),
                "approved_by": a.approved_by,
            }
            for a in actives
        ]
        path = settings.production_config
        runs = repo.list_runs(limit=limit)
        latest = last_outcome(runs[0]) if runs else None
        return {
            "active": active[0] if len(active) == 1 else (active or None),
            "production_config": str(path) if path.is_file() and actives else None,
            "production_config_status": describe_production_file(repo, path, why=latest),
            "versions": [
                {
                    "model_key": v.model_key,
                    "version": v.version,
                    "state": v.state,
                    "params": v.params,
                    "created_at": iso(v.created_at),
                    "source_run": v.source_run,
                }
                for v in repo.list_config_versions()
            ],
            "runs": [
                {
                    "run_id": r.run_id,
                    "dag": r.dag_id,
                    "state": r.state,
                    "report": r.report_path,
                    "best_value": r.best_value,
                    "n_trials": r.n_trials,
                    "decision": r.decision,
                    **verdict_fields(r.verdict),
                    "failed_step": r.failed_step,
                    "error": r.error,
                    "started_at": iso(r.started_at),
                }
                for r in runs
            ],
        }
    finally:
        repo.close()


def last_outcome(run: Any) -> str | None:
    """What a run ended in, for the line that says why production.yaml was not written."""
    return run.decision or (f"failed in {run.failed_step}" if run.failed_step else None)


VERDICT_FIELDS = ("dsr", "pbo", "n_backtests", "n_effective", "sr0", "rank_reliability", "benchmark", "gate")


def verdict_fields(verdict: dict[str, Any] | None) -> dict[str, Any]:
    """A run's selection statistics, benchmark comparison and gate checks (None before promote)."""
    return {key: (verdict or {}).get(key) for key in VERDICT_FIELDS}


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
