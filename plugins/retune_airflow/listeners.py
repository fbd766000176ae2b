"""The decision on Airflow's own run page: when a Retune DAG run ends, its note says what was
decided — promoted, or kept with every failed gate check and its number, or the step that failed
with its error — and links the report. Runs in the scheduler (or ``airflow dags test``), which
holds the DAG run in its session: the note is committed with the run's final state.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl

from retune_airflow.links import retune_dag_name, runs_of

log = logging.getLogger(__name__)
NOTE_LIMIT = 1000  # dag_run_note.content


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    _write_note(dag_run)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    _write_note(dag_run)


def _write_note(dag_run: Any) -> None:
    name = retune_dag_name(dag_run.dag_id)
    if name is None:
        return
    try:
        note = run_note(dag_run.dag_id, dag_run.run_id, str(getattr(dag_run, "run_type", "")), name)
    except Exception:  # never let a note break the scheduler
        log.exception("no Retune note for %s %s", dag_run.dag_id, dag_run.run_id)
        return
    if note:
        _set_note(dag_run, note[:NOTE_LIMIT])


def _set_note(dag_run: Any, note: str) -> None:
    """On the run in the caller's session; `airflow dags test` hands over a run detached from
    its session, so there the note goes through a session of its own."""
    from sqlalchemy import inspect

    if not inspect(dag_run).detached:
        dag_run.note = note
        return
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        attached = session.get(DagRun, dag_run.id)
        if attached is not None:
            attached.note = note


def run_note(dag_id: str, dag_run_id: str, run_type: str, name: str) -> str | None:
    """Markdown: one paragraph per model key of the run."""
    from pipelines.settings import load_settings
    from pipelines.store.repository import Repository

    repo = Repository(load_settings().db_url)
    try:
        runs = runs_of(repo, dag_id, dag_run_id)
        proposals = {
            (v.model_key, v.source_run): v for r in runs for v in repo.list_config_versions(r.model_key)
        }
    finally:
        repo.close()
    if not runs:
        if run_type.lower().endswith("scheduled"):
            return (
                f"**Skipped**: no data source for scheduled runs (set `RETUNE_{name.upper()}_DATA` "
                "or `data_source` in the config)."
            )
        return None
    return "\n\n".join(run_summary(run, proposals.get((run.model_key, run.run_id))) for run in runs)


def run_summary(run: Any, proposal: Any = None) -> str:
    report = f" — [report](/retune/reports/{run.run_id}/)" if run.report_path else ""
    if run.failed_step:
        error = (run.error or "").strip().splitlines()
        return f"**{run.model_key}: failed in {run.failed_step}**: {error[0][:300] if error else ''}{report}"
    checks = ((run.verdict or {}).get("gate") or {}).get("checks") or []
    failed = [c for c in checks if not c.get("passed")]
    state = ""
    if proposal is not None:
        by = f", approved by {proposal.approved_by}" if proposal.state == "active" else ""
        state = f" (config v{proposal.version} {proposal.state}{by})"
    line = f"**{run.model_key}: {run.decision or run.state}**{state}{report}"
    if failed and "gate failed" not in (run.decision or ""):  # the decision names them already
        line += "\n\nFailed checks: " + "; ".join(
            f"{c['name']} {_num(c.get('value'))} (needs {_num(c.get('threshold'))})" for c in failed
        )
    return line


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
