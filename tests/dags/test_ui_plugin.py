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
    report.write_text(
        '<html><body>Retune report for daily__r1 <a href="plots/history.html">h</a></body></html>'
    )
    (report.parent / "plots").mkdir()
    (report.parent / "plots" / "history.html").write_text("<html>history plot</html>")
    (report.parent / "plots" / "plotly.min.js").write_text("/* plotly */")
    (report.parent / "trials.csv").write_text("number,value\n0,1.5\n")
    (report.parent / "best_params.json").write_text('{"lr": 0.01}')
    (report.parent / "escape.txt").symlink_to(settings.home / "secret.txt")
    other = settings.reports_dir / "not_a_run"
    other.mkdir()
    (other / "report.html").write_text("a folder the store does not know")
    repo.update_run("daily__r1", report_path=str(report), decision="promoted", state="success")
    repo.propose("spx", "daily__r1", {"lr": 0.01}, model_version=None, metrics={}, report_path=str(report))
    repo.approve("spx", "daily__r1", actor="airflow:ops_bob", reason="<script>alert(1)</script>")
    for run_id, config in (("daily__f1__spx_cfg", "spx_cfg"), ("daily__f1__ndx_cfg", "ndx_cfg")):
        repo.start_run(run_id, dag_id="daily", model_key=config, as_of=None, data_source="x", params={})
    repo.update_run(
        "daily__f1__ndx_cfg",
        state="failed",
        failed_step="validate",
        error="missing columns: open, high (the file has 2 columns)",
    )
    repo.close()
    (settings.home / "secret.txt").write_text("not for the web")
    app.dependency_overrides[require_login] = lambda: None  # logged in (Airflow checks the token)
    yield TestClient(app)
    app.dependency_overrides.clear()


def test_index_lists_runs_versions_and_the_audit_trail(client):
    page = client.get("/")
    assert page.status_code == 200
    text = page.text
    assert "daily__r1" in text and 'href="reports/daily__r1/"' in text
    assert "promoted" in text and "v1 active" in text and "airflow:ops_bob" in text  # the proposal now
    assert "UTC" in text and "- →" not in text  # times with their timezone; versions without dashes
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;" in text  # reasons are escaped


def test_a_failed_run_shows_its_step_and_error(client):
    text = client.get("/").text
    assert "failed in validate: missing columns: open, high (the file has 2 columns)" in text


def test_a_fleet_runs_extra_link_lists_its_keys(client):
    page = client.get("/airflow/retune_daily_fleet/f1")
    assert page.status_code == 200
    assert "spx_cfg" in page.text and "ndx_cfg: validate" in page.text and "(no report)" in page.text


def test_report_is_served_for_known_runs_only(client):
    served = client.get("/reports/daily__r1")  # redirected into its folder: relative links work
    assert served.status_code == 200 and "Retune report for daily__r1" in served.text
    assert str(served.url).endswith("/reports/daily__r1/")
    for bad in ("unknown_run", "not_a_run", "..%2Fsecret.txt", "..%2F..%2Fsecret.txt"):
        assert client.get(f"/reports/{bad}").status_code == 404
        assert client.get(f"/reports/{bad}/").status_code == 404


def test_every_file_the_report_links_to_is_served_from_its_folder(client):
    for name, media, content in (
        ("plots/history.html", "text/html", "history plot"),
        ("plots/plotly.min.js", "javascript", "plotly"),
        ("trials.csv", "text/csv", "number,value"),
        ("best_params.json", "application/json", "lr"),
    ):
        response = client.get(f"/reports/daily__r1/{name}")
        assert response.status_code == 200, name
        assert media in response.headers["content-type"] and content in response.text
    for bad in (
        "missing.csv",
        "..%2F..%2Fsecret.txt",
        "plots%2F..%2F..%2F..%2Fsecret.txt",
        "escape.txt",  # a symlink out of the folder
        "..%2Fnot_a_run%2Freport.html",  # another folder
        "plots",  # a folder, not a file
    ):
        assert client.get(f"/reports/daily__r1/{bad}").status_code == 404, bad


def test_the_airflow_extra_link_opens_the_runs_report(client):
    from retune_airflow.links import RetuneReportLink

    class Key:
        dag_id, run_id, task_id, map_index = "retune_daily", "r1", "report", -1

    link = RetuneReportLink().get_link(None, ti_key=Key())
    assert link == "/retune/airflow/retune_daily/r1"
    opened = client.get(link.removeprefix("/retune"), follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == "/retune/reports/daily__r1/"
    assert client.get("/airflow/retune_daily/unknown").status_code == 404
    Key.dag_id = "someone_elses_dag"
    assert RetuneReportLink().get_link(None, ti_key=Key()) == ""


def test_every_page_needs_an_airflow_login():
    from retune_airflow.ui import app

    anonymous = TestClient(app)
    for path in ("/", "/api/status", "/reports/daily__r1", "/reports/daily__r1/trials.csv", "/airflow/a/b"):
        assert anonymous.get(path).status_code in (401, 403)


def test_status_api_matches_the_cli(client):
    status = client.get("/api/status").json()
    assert status["versions"][0]["state"] == "active" and "daily__r1" in [r["run_id"] for r in status["runs"]]


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


def test_each_run_links_to_its_study_when_a_dashboard_is_configured(client, monkeypatch):
    import optuna

    from pipelines.settings import load_settings
    from pipelines.store.repository import Repository

    settings = load_settings()
    optuna.create_study(study_name="retune-daily__r1", storage=settings.optuna_url)
    repo = Repository(settings.db_url)
    repo.update_run("daily__r1", study_name="retune-daily__r1")
    repo.close()
    assert 'href="studies/' not in client.get("/").text  # no dashboard configured: no link
    assert client.get("/studies/daily__r1", follow_redirects=False).status_code == 404

    monkeypatch.setenv("RETUNE_DASHBOARD_URL", "http://dash.example:8081/")
    assert 'href="studies/daily__r1"' in client.get("/").text
    assert 'href="studies/daily__f1__spx_cfg"' not in client.get("/").text  # that run has no study
    jump = client.get("/studies/daily__r1", follow_redirects=False)
    study_id = optuna.storages.RDBStorage(settings.optuna_url).get_study_id_from_name("retune-daily__r1")
    assert jump.status_code == 303
    assert jump.headers["location"] == f"http://dash.example:8081/dashboard/studies/{study_id}"
    assert client.get("/studies/daily__f1__spx_cfg", follow_redirects=False).status_code == 404


@pytest.mark.parametrize("bad", ["dash.example:8081", "javascript:alert(1)", "http://a b", "ftp://x"])
def test_a_dashboard_url_that_is_not_http_is_refused_with_its_name(monkeypatch, bad):
    from pipelines.settings import load_settings

    monkeypatch.setenv("RETUNE_DASHBOARD_URL", bad)
    with pytest.raises(ValueError, match="RETUNE_DASHBOARD_URL=.*an http:// or https:// URL"):
        load_settings()
