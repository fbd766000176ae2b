"""The Airflow UI plugin: loaded by Airflow, lists runs/versions/audit, serves reports safely."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins"))


@pytest.fixture
def client(tmp_path):
    """The plugin app over a store with one run that was proposed, approved and has a report."""
    import pandas as pd
    from retune_airflow.ui import app, require_login

    from pipelines.settings import load_settings
    from pipelines.store.migrate import upgrade
    from pipelines.store.repository import Repository

    settings = load_settings()
    upgrade(settings.db_url)
    repo = Repository(settings.db_url)
    repo.start_run(
        "daily__r1",
        dag_id="daily",
        model_key="spx",
        as_of=pd.Timestamp(2021, 1, 1),
        data_source="x",
        params={},
    )
    report = settings.reports_dir / "daily__r1" / "report.html"
    report.parent.mkdir(parents=True)
    report.write_text("<html><body>Retune report for daily__r1</body></html>")
    repo.update_run("daily__r1", report_path=str(report), decision="promoted", state="success")
    repo.propose("spx", "daily__r1", {"lr": 0.01}, model_version=None, metrics={}, report_path=str(report))
    repo.approve("spx", "daily__r1", actor="airflow:ops_bob", reason="<script>alert(1)</script>")
    repo.close()
    (settings.home / "secret.txt").write_text("not for the web")
    app.dependency_overrides[require_login] = lambda: None  # logged in (Airflow checks the token)
    yield TestClient(app)
    app.dependency_overrides.clear()


def test_index_lists_runs_versions_and_the_audit_trail(client):
    page = client.get("/")
    assert page.status_code == 200
    text = page.text
    assert "daily__r1" in text and 'href="reports/daily__r1"' in text
    assert "promoted" in text and "v1" in text and "airflow:ops_bob" in text
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;" in text  # reasons are escaped


def test_report_is_served_for_known_runs_only(client):
    served = client.get("/reports/daily__r1")
    assert served.status_code == 200 and "Retune report for daily__r1" in served.text
    for bad in ("unknown_run", "..%2Fsecret.txt", "..%2F..%2Fsecret.txt"):
        assert client.get(f"/reports/{bad}").status_code == 404


def test_every_page_needs_an_airflow_login():
    from retune_airflow.ui import app

    anonymous = TestClient(app)
    for path in ("/", "/api/status", "/reports/daily__r1"):
        assert anonymous.get(path).status_code in (401, 403)


def test_status_api_matches_the_cli(client):
    status = client.get("/api/status").json()
    assert status["versions"][0]["state"] == "active" and status["runs"][0]["run_id"] == "daily__r1"


def test_airflow_loads_the_plugin(tmp_path):
    import subprocess

    from test_dag_files import _airflow_env

    out = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "plugins", "--output", "json"],
        capture_output=True,
        text=True,
        env=_airflow_env(tmp_path),
        timeout=120,
        check=True,
    )
    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    assert "retune" in plugins
    assert "/retune" in json.dumps(plugins["retune"])
