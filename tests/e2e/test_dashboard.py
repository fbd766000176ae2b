"""`make dashboard` serves optuna-dashboard on our study storage: a study a search wrote in
PostgreSQL, read back over HTTP, and the link a report gets (``RETUNE_DASHBOARD_URL``) opens it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

import optuna
import pytest
from e2e_support import ROOT

from devtools.airflow_stack import free_port
from pipelines.search.dashboard import study_link
from pipelines.search.heartbeats import make_storage

pytestmark = pytest.mark.slow


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


NAME = "retune-daily__dashboard-e2e"


@pytest.fixture
def study(postgres_url) -> optuna.Study:
    """A study written as a search writes it (our storage, heartbeats on), before the dashboard
    starts: optuna-dashboard reads a storage, it does not create one."""
    study = optuna.create_study(study_name=NAME, storage=make_storage(postgres_url), direction="maximize")
    study.optimize(lambda t: -((t.suggest_float("lr", 1e-4, 1e-2, log=True) - 3e-3) ** 2), n_trials=5)
    return study


@pytest.fixture
def dashboard(study, postgres_url, tmp_path):
    """`make dashboard` (the venv as built; never reinstalled here) on the PostgreSQL store."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MAKEFLAGS"}
    env.update(RETUNE_DB_URL=postgres_url, DASHBOARD_PORT=str(port), RETUNE_HOME=str(tmp_path))
    log = (tmp_path / "dashboard.log").open("w")
    process = subprocess.Popen(
        ["make", "--no-print-directory", "-o", ".venv/bin/retune", "dashboard"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            with contextlib.suppress(OSError):
                get(f"{base}/api/meta")
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"make dashboard did not come up:\n{(tmp_path / 'dashboard.log').read_text()}"
                )
            time.sleep(0.5)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_the_dashboard_reads_a_study_from_postgresql(dashboard, study, postgres_url):
    name = NAME
    listed = json.loads(get(f"{dashboard}/api/studies")[1])["study_summaries"]
    ours = next(s for s in listed if s["study_name"] == name)
    detail = json.loads(get(f"{dashboard}/api/studies/{ours['study_id']}")[1])
    assert len(detail["trials"]) == 5 and {t["state"] for t in detail["trials"]} == {"Complete"}
    best = max(t["values"][0] for t in detail["trials"])
    assert best == pytest.approx(study.best_value)

    link = study_link(dashboard, postgres_url, name)  # what a report links to
    assert link == f"{dashboard}/dashboard/studies/{ours['study_id']}"
    status, page = get(link)
    assert status == 200 and b"<html" in page.lower()
    assert study_link(dashboard, postgres_url, "retune-no-such-run") is None
    with pytest.raises(urllib.error.HTTPError):
        get(f"{dashboard}/api/studies/{ours['study_id'] + 1000}")
