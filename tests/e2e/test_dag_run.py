"""The daily DAG, run by Airflow itself (`airflow dags test`), on small synthetic bars."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from conftest import AS_OF, BIN, run

pytestmark = pytest.mark.slow

# The fine-tune path is under test: no linear baseline trial that could win and change the family.
TINY = {"n_trials": 3, "timeout_minutes": 5, "as_of": AS_OF, "config": "lstm_only"}


@pytest.fixture(scope="module")
def airflow_env(e2e_env):
    Path(e2e_env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    configs = Path(e2e_env["RETUNE_HOME"]) / "configs"
    (configs / "lstm_only.yaml").write_text((configs / "auto.yaml").read_text() + "baseline_family: null\n")
    out = run([str(BIN / "airflow"), "db", "migrate"], e2e_env)
    assert out.returncode == 0, out.stderr[-3000:]
    return e2e_env


def dags_test(env, conf):
    return run([str(BIN / "airflow"), "dags", "test", "retune_daily", "--conf", json.dumps(conf)], env)


def status(env) -> dict:
    out = run([str(BIN / "retune"), "status", "--json"], env)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def store_snapshot(env) -> tuple[list, bytes | None]:
    home = Path(env["RETUNE_HOME"])
    with sqlite3.connect(home / "retune.db") as conn:
        rows = conn.execute("SELECT * FROM retune_config_versions ORDER BY id").fetchall()
    production = home / "config" / "production.yaml"
    return rows, production.read_bytes() if production.exists() else None


def deploy(env, run_id: str, params: dict) -> None:
    """Make the run's model the deployed one, as an operator promoting it would: a daily run
    fine-tunes only the deployed model."""
    from pipelines.promotion.production_file import sync_production_file
    from pipelines.settings import Settings
    from pipelines.store.repository import Repository

    home = Path(env["RETUNE_HOME"])
    repo = Repository(f"sqlite:///{home / 'retune.db'}")
    key = repo.get_run(run_id).model_key
    repo.promote(
        key,
        run_id,
        params,
        actor="test",
        reason="seed a champion",
        model_version=1,
        metrics={},
        report_path=None,
    )
    sync_production_file(repo, Settings(home, "", "").production_config)
    repo.close()


def test_daily_dag_runs_then_finetunes_and_rejects_corrupt_bars(airflow_env):
    first = dags_test(airflow_env, {**TINY, "data": "csv:good.csv"})
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    runs = status(airflow_env)["runs"]
    assert len(runs) == 1 and runs[0]["state"] == "success"
    report = Path(runs[0]["report"])
    assert report.is_file() and "Retune report" in report.read_text()
    trials = pd.read_csv(report.parent / "trials.csv")
    assert len(trials) == TINY["n_trials"]
    assert (report.parent / "best_params.json").is_file()
    assert "search_space" not in json.loads((report.parent / "best_config.json").read_text())
    html = report.read_text()
    assert "Deflated Sharpe Ratio" in html and "Degenerate-objective audit" in html
    search = json.loads(
        (Path(airflow_env["RETUNE_HOME"]) / "runs" / runs[0]["run_id"] / "search.json").read_text()
    )
    stats = search["statistics"]
    assert stats["dsr"]["n_trials"] == pytest.approx(stats["n_effective_ever"])  # the DSR's N: effective
    assert 1 <= stats["n_effective_ever"] <= stats["n_backtests_ever"]
    first_model = json.loads(
        (Path(airflow_env["RETUNE_HOME"]) / "runs" / runs[0]["run_id"] / "finetune.json").read_text()
    )
    assert first_model["trained_how"] == "scratch" and first_model["model_version"] == 1
    if runs[0]["decision"] != "promoted":  # random-walk bars rarely pass the gate: deploy v1 by hand
        deploy(airflow_env, runs[0]["run_id"], search["best_params"])

    second = dags_test(airflow_env, {**TINY, "data": "csv:good.csv"})
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    runs = status(airflow_env)["runs"]
    assert [r["state"] for r in runs] == ["success", "success"]
    assert all(r["n_trials"] == TINY["n_trials"] and Path(r["report"]).is_file() for r in runs)
    second_model = json.loads(
        (Path(airflow_env["RETUNE_HOME"]) / "runs" / runs[0]["run_id"] / "finetune.json").read_text()
    )
    assert second_model["trained_how"] == "finetune"
    assert second_model["parent_version"] == 1 and second_model["model_version"] == 2
    assert "fine-tuned from v1" in Path(runs[0]["report"]).read_text()
    second_search = json.loads(
        (Path(airflow_env["RETUNE_HOME"]) / "runs" / runs[0]["run_id"] / "search.json").read_text()
    )
    # the DSR's N counts the first run's backtests too
    stats = second_search["statistics"]
    assert stats["n_backtests_ever"] > stats["n_backtests_this_run"] > 0

    before = store_snapshot(airflow_env)
    digest = hashlib.sha256(repr(before).encode()).hexdigest()
    bad = dags_test(airflow_env, {**TINY, "data": "csv:bad.csv"})
    assert bad.returncode != 0
    log = bad.stdout + bad.stderr
    assert "expect_column_values_to_be_between(column=close" in log
    assert "expect_column_values_to_be_unique(column=timestamp" in log
    after = store_snapshot(airflow_env)
    assert hashlib.sha256(repr(after).encode()).hexdigest() == digest
    assert after[1] == before[1]  # production.yaml byte for byte
    failed = status(airflow_env)["runs"][0]
    assert failed["state"] == "failed" and failed["failed_step"] == "validate"
    assert failed["report"] is None


def test_a_trigger_whose_data_escapes_through_a_symlink_is_refused(airflow_env):
    """The trigger form's pattern accepts `csv:escape.csv`; the task refuses what it points at."""
    data = Path(airflow_env["RETUNE_DATA_DIR"])
    (data / "escape.csv").unlink(missing_ok=True)
    (data / "escape.csv").symlink_to("/etc/passwd")
    production = Path(airflow_env["RETUNE_HOME"]) / "config" / "production.yaml"
    before = (status(airflow_env)["runs"], production.read_bytes() if production.exists() else None)
    out = dags_test(airflow_env, {**TINY, "data": "csv:escape.csv"})
    assert out.returncode != 0
    log = out.stdout + out.stderr
    assert f"csv:escape.csv: refused, the file is outside the data directory {data.resolve()}" in log
    assert "root:" not in log  # not a byte of /etc/passwd
    after = (status(airflow_env)["runs"], production.read_bytes() if production.exists() else None)
    assert after == before  # no run recorded, production.yaml untouched
