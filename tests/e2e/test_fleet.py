"""Several model keys in one DAG run: `retune_daily_fleet` maps a task group per config, run by
Airflow itself (`airflow dags test`); each key ends with its own run, model and production entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from e2e_support import AS_OF, BIN, PLUMBING_BUDGET, ROOT, run

pytestmark = pytest.mark.slow

CONF = {"data": "csv:good.csv", "n_trials": 2, "timeout_minutes": 5, "as_of": AS_OF}


@pytest.fixture
def fleet_env(e2e_env, tmp_path):
    home, airflow_home = tmp_path / "var", tmp_path / "airflow"
    (home / "configs").mkdir(parents=True)
    airflow_home.mkdir()
    daily = yaml.safe_load((ROOT / "pipelines" / "defaults" / "daily.yaml").read_text())
    for name in ("alpha", "beta"):
        config = {**daily, **PLUMBING_BUDGET, "model_key": f"{name}_key", "promotion_policy": "auto"}
        config.update(dsr_threshold=0.0)
        config.update(benchmark_alpha=1.0, holdout_benchmark_alpha=1.0)
        (home / "configs" / f"{name}.yaml").write_text(yaml.safe_dump(config))
    (home / "configs" / "alpha_again.yaml").write_text(
        yaml.safe_dump({**daily, **PLUMBING_BUDGET, "model_key": "alpha_key"})
    )
    env = dict(
        e2e_env,
        RETUNE_HOME=str(home),
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{airflow_home / 'airflow.db'}",
    )
    out = run([str(BIN / "airflow"), "db", "migrate"], env)
    assert out.returncode == 0, out.stderr[-3000:]
    return env


def fleet_test(env, configs):
    conf = json.dumps({**CONF, "configs": configs})
    return run([str(BIN / "airflow"), "dags", "test", "retune_daily_fleet", "--conf", conf], env)


def test_two_model_keys_in_one_run_then_a_clash_is_refused(fleet_env):
    out = fleet_test(fleet_env, ["alpha", "beta"])
    assert out.returncode == 0 and "state=success" in out.stdout + out.stderr, out.stderr[-4000:]
    status = json.loads(run([str(BIN / "retune"), "status", "--json"], fleet_env).stdout)
    runs = {r["run_id"].rsplit("__", 1)[-1]: r for r in status["runs"]}
    assert set(runs) == {"alpha", "beta"}
    for name, entry in runs.items():
        assert entry["state"] == "success" and entry["n_trials"] == 2, name
        assert Path(entry["report"]).is_file(), name
    home = Path(fleet_env["RETUNE_HOME"])
    assert {p.name for p in (home / "models").iterdir()} == {"alpha_key", "beta_key"}

    clash = fleet_test(fleet_env, ["alpha", "alpha_again"])
    assert "both tune model key 'alpha_key'" in clash.stdout + clash.stderr
    assert len(json.loads(run([str(BIN / "retune"), "status", "--json"], fleet_env).stdout)["runs"]) == 2
