"""Retune in the Airflow UI: runs, reports and promotion history (Airflow 3 plugin, FastAPI app).

Mounted by the api-server at ``/retune``; the plugin's external view adds it to the navigation.
Every page needs an Airflow login, and nothing here writes.
A report and the files it links to (plots, CSV and JSON outputs) are served only for a run the
store knows, from that run's report folder under RETUNE_HOME, so a URL can never reach another
file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from airflow.api_fastapi.core_api.security import requires_authenticated
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from retune_airflow.links import airflow_run_for, airflow_run_url, airflow_runs, runs_of

# Airflow mounts plugin apps without its own auth: require the same login (token or UI cookie).
require_login = requires_authenticated()
app = FastAPI(
    title="Retune",
    description="Runs, reports and promotion history of Retune (read-only).",
    dependencies=[Depends(require_login)],
)

TEMPLATES = Path(__file__).parent / "templates"


def when(value: Any) -> str:
    """A time as people read it, with its timezone (stored times are UTC)."""
    if value in (None, ""):
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def num(value: Any, digits: int = 3) -> str:
    """A number rounded for people (``8.3e-17`` reads 0)."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if abs(value) < 1e-9:
        return "0"
    return f"{value:.{digits}g}" if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.{digits}f}"


def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    env.filters.update(when=when, num=num, urlquote=lambda v: quote(str(v), safe=""))
    return env


@app.get("/", response_class=HTMLResponse)
def index() -> str:
    """The overview page: each run with its proposal's current state, its report and its
    Airflow run; config versions; the audit trail."""
    from pipelines.settings import load_settings
    from pipelines.status import status_payload
    from pipelines.store.repository import Repository

    status = status_payload(limit=50, repair=False)  # a page view never writes
    settings = load_settings()
    repo = Repository(settings.db_url)
    try:
        audit = repo.audit_log(limit=100)
        proposals = {(v.model_key, v.source_run): v for v in repo.list_config_versions()}
        runs = {r.run_id: r for r in repo.list_runs(limit=50)}
    finally:
        repo.close()
    known = airflow_runs()
    rows = []
    for r in status["runs"]:
        run = runs.get(r["run_id"])
        proposal = proposals.get((run.model_key, r["run_id"])) if run is not None else None
        airflow = airflow_run_for(r["run_id"], known)
        rows.append(
            {
                **r,
                "model_key": run.model_key if run is not None else "",
                "proposal": f"v{proposal.version} {proposal.state}" if proposal is not None else "",
                "airflow_url": airflow_run_url(*airflow) if airflow else None,
                # optuna-dashboard, when configured: the link resolves the study's id on click
                "study": bool(settings.dashboard_url and run is not None and run.study_name),
            }
        )
    return _environment().get_template("index.html.j2").render(status=status, runs=rows, audit=audit)


@app.get("/api/status")
def status(limit: int = 20) -> dict[str, Any]:
    """The same object as ``retune status --json``."""
    from pipelines.status import status_payload

    return status_payload(limit=max(1, min(limit, 500)), repair=False)


@app.get("/airflow/{dag_id}/{dag_run_id}", response_model=None)
def from_airflow(dag_id: str, dag_run_id: str) -> RedirectResponse | HTMLResponse:
    """Where the "Retune report" extra link of a task goes: the run's report (a fleet run: the
    list of its keys' reports)."""
    from pipelines.settings import load_settings
    from pipelines.store.repository import Repository

    repo = Repository(load_settings().db_url)
    try:
        runs = [r for r in runs_of(repo, dag_id, dag_run_id)]
    finally:
        repo.close()
    with_report = [r for r in runs if r.report_path]
    if len(with_report) == 1:
        return RedirectResponse(f"/retune/reports/{quote(with_report[0].run_id, safe='')}/", status_code=303)
    if not runs:
        raise HTTPException(status_code=404, detail=f"Retune has no run for {dag_id} {dag_run_id!r}")
    return HTMLResponse(
        _environment()
        .from_string(
            "<!doctype html><title>Retune: {{ dag_run_id }}</title><h1>{{ dag_run_id }}</h1><ul>"
            "{% for r in runs %}<li>{{ r.model_key }}: {{ r.decision or r.failed_step or r.state }}"
            '{% if r.report_path %} — <a href="/retune/reports/{{ r.run_id | urlquote }}/">report</a>'
            "{% else %} (no report){% endif %}</li>{% endfor %}</ul>"
        )
        .render(dag_run_id=dag_run_id, runs=runs)
    )


@app.get("/studies/{run_id}", response_model=None)
def study(run_id: str) -> RedirectResponse:
    """The run's Optuna study in optuna-dashboard (``RETUNE_DASHBOARD_URL``)."""
    from pipelines.search.dashboard import study_link
    from pipelines.settings import load_settings
    from pipelines.store.repository import Repository

    settings = load_settings()
    if not settings.dashboard_url:
        raise HTTPException(status_code=404, detail="no optuna-dashboard configured (RETUNE_DASHBOARD_URL)")
    repo = Repository(settings.db_url)
    try:
        run = repo.get_run(run_id)
    finally:
        repo.close()
    link = study_link(settings.dashboard_url, settings.optuna_url, run.study_name if run else None)
    if link is None:
        raise HTTPException(status_code=404, detail=f"no study for run {run_id!r}")
    return RedirectResponse(link, status_code=303)


@app.get("/reports/{run_id}", response_model=None)
def report_folder(run_id: str) -> RedirectResponse:
    """The report lives at ``…/{run_id}/`` so that its relative links (``plots/…``, CSV, JSON)
    resolve inside the run's folder."""
    _report_dir(run_id)
    return RedirectResponse(f"./{quote(run_id, safe='')}/", status_code=307)


@app.get("/reports/{run_id}/")
def report(run_id: str) -> FileResponse:
    """A run's HTML report (self-contained: its charts work offline)."""
    return report_file(run_id, "report.html")


@app.get("/reports/{run_id}/{name:path}")
def report_file(run_id: str, name: str) -> FileResponse:
    """A file of the run's report folder: plots, trials.csv, best_params.json, ..."""
    folder = _report_dir(run_id)
    path = (folder / name).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        raise HTTPException(status_code=404, detail=f"run {run_id!r} has no file {name!r}")
    media = "text/html" if path.suffix == ".html" else None  # else guessed from the name
    return FileResponse(path, media_type=media)


def _report_dir(run_id: str) -> Path:
    """The run's report folder, resolved; 404 for a run the store does not know."""
    from pipelines.settings import load_settings
    from pipelines.store.repository import Repository

    settings = load_settings()
    repo = Repository(settings.db_url)
    try:
        run = repo.get_run(run_id)
    finally:
        repo.close()
    root = settings.reports_dir.resolve()
    folder = (root / run_id).resolve() if run is not None else None
    if folder is None or folder.parent != root or not folder.is_dir():
        raise HTTPException(status_code=404, detail=f"no report for run {run_id!r}")
    return folder
