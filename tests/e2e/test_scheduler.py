"""Retune as deployed: Airflow's scheduler (LocalExecutor), dag-processor and api-server on
PostgreSQL, our store and the Optuna studies on PostgreSQL; a run triggered through the REST API
with conf, read back through `retune status --json`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from e2e_support import AS_OF, BIN, run

from devtools.airflow_stack import AirflowStack
from devtools.throwaway_pg import throwaway_database

pytestmark = pytest.mark.slow

MAIN_STEPS = ("validate", "features", "narrow", "search", "finetune", "evaluate", "report", "promote")


def test_a_triggered_daily_run_under_the_real_scheduler(e2e_env, postgres_url, tmp_path):
    home = tmp_path / "var"
    (home / "configs").mkdir(parents=True)
    shutil.copy(Path(e2e_env["RETUNE_HOME"]) / "configs" / "auto.yaml", home / "configs" / "auto.yaml")
    env = dict(e2e_env, RETUNE_HOME=str(home), RETUNE_DB_URL=postgres_url)
    conf = {"data": "csv:good.csv", "n_trials": 2, "as_of": AS_OF, "config": "auto"}
    with (
        throwaway_database(prefix="airflow_meta") as metadata_url,
        AirflowStack(env, tmp_path / "airflow", metadata_url) as stack,
    ):
        stack.wait_for_dag("retune_daily")
        run_id = stack.trigger("retune_daily", conf, "rest-e2e")
        finished = stack.wait_for_run("retune_daily", run_id)
        states = stack.task_states("retune_daily", run_id)
        assert finished["state"] == "success", f"{states}\n{stack.logs()}"
        assert finished["conf"] == conf
    assert all(states[step] == "success" for step in MAIN_STEPS), states
    assert states["review"] == "skipped"  # policy auto: nobody is asked

    status = run([str(BIN / "retune"), "status", "--json"], env)
    assert status.returncode == 0, status.stderr[-3000:]
    runs = {r["run_id"]: r for r in json.loads(status.stdout)["runs"]}
    ours = runs["daily__rest-e2e"]
    assert ours["state"] == "success" and ours["n_trials"] == 2
    assert Path(ours["report"]).is_file() and ours["decision"]
