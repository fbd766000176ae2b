"""Retune in the Airflow UI: runs, reports and promotion history (Airflow 3 plugin, FastAPI app).

Mounted by the api-server at ``/retune``; the plugin's external view adds it to the navigation.
Every page needs an Airflow login, and nothing here writes.
A report is served only for a run the store knows, from that run's folder under RETUNE_HOME,
so a URL can never reach another file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.api_fastapi.core_api.security import requires_authenticated
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

# Airflow mounts plugin apps without its own auth: require the same login (token or UI cookie).
require_login = requires_authenticated()
app = FastAPI(
    title="Retune",
    description="Runs, reports and promotion history of Retune (read-only).",
    dependencies=[Depends(require_login)],
)

TEMPLATES = Path(__file__).parent / "templates"


@app.get("/", response_class=HTMLResponse)
def index() -> str:
    """The overview page: latest runs with links to their reports, versions, audit trail."""
    import jinja2

    from pipelines.cli import status_payload
    from pipelines.settings import load_settings
    from pipelines.store.repository import Repository

    status = status_payload(limit=50, repair=False)  # a page view never writes
    repo = Repository(load_settings().db_url)
    try:
        audit = repo.audit_log(limit=100)
    finally:
        repo.close()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    return env.get_template("index.html.j2").render(status=status, audit=audit)


@app.get("/api/status")
def status(limit: int = 20) -> dict[str, Any]:
    """The same object as ``retune status --json``."""
    from pipelines.cli import status_payload

    return status_payload(limit=max(1, min(limit, 500)), repair=False)


@app.get("/reports/{run_id}")
def report(run_id: str) -> FileResponse:
    """A run's HTML report (self-contained: its charts work offline)."""
    from pipelines.settings import load_settings
    from pipelines.store.repository import Repository

    settings = load_settings()
    repo = Repository(settings.db_url)
    try:
        run = repo.get_run(run_id)
    finally:
        repo.close()
    path = (settings.reports_dir / run_id / "report.html").resolve() if run is not None else None
    if path is None or not path.is_relative_to(settings.reports_dir.resolve()) or not path.is_file():
        raise HTTPException(status_code=404, detail=f"no report for run {run_id!r}")
    return FileResponse(path, media_type="text/html")
