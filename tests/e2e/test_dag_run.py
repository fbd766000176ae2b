"""The daily DAG, run by Airflow itself (`airflow dags test`), on small synthetic bars."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from e2e_support import AS_OF, BIN, ROOT, run

pytestmark = pytest.mark.slow

# The fine-tune path is under test: no linear baseline trial that could win and change the family.
TINY = {"n_trials": 3, "timeout_minutes": 5, "as_of": AS_OF, "config": "lstm_only"}


@pytest.fixture(scope="module")
def airflow_db(e2e_env):
    """The module's Airflow metadata database, migrated once."""
    Path(e2e_env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    out = run([str(BIN / "airflow"), "db", "migrate"], e2e_env)
    assert out.returncode == 0, out.stderr[-3000:]
    return e2e_env


@pytest.fixture
def airflow_env(airflow_db, tmp_path):
    """A RETUNE_HOME of the test's own on the shared Airflow database: each test counts only
    its own runs and versions, whichever test ran before it."""
    configs = tmp_path / "var" / "configs"
    shutil.copytree(Path(airflow_db["RETUNE_HOME"]) / "configs", configs)
    (configs / "lstm_only.yaml").write_text((configs / "auto.yaml").read_text() + "baseline_family: null\n")
    env = dict(airflow_db, RETUNE_HOME=str(tmp_path / "var"))
    out = run([str(BIN / "retune"), "db", "upgrade"], env)
    assert out.returncode == 0, out.stderr[-3000:]
    return env


def dags_test(env, conf):
    return run([str(BIN / "airflow"), "dags", "test", "retune_daily", "--conf", json.dumps(conf)], env)


def airflow_notes(env) -> list[str]:
    """The DAG run notes in Airflow's metadata database, oldest first."""
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as conn:
        return [row[0] for row in conn.execute("SELECT content FROM dag_run_note ORDER BY created_at")]


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
    from pipelines.settings import Settings
    from pipelines.store.production_file import sync_production_file
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
    assert "variance 1/T of a skill-less Sharpe, the trials' own spread" in html
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
    # the decision on Airflow's run page, though `dags test` hands the listener a detached run
    assert "Traceback" not in first.stdout + first.stderr
    assert runs[0]["decision"] in airflow_notes(airflow_env)[-1]
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


def hourly_fx_bars(n: int = 5000, seed: int = 16) -> pd.DataFrame:
    """n hourly bars around the clock, Monday to Friday (an FX pair), UTC."""
    import numpy as np

    hours = pd.date_range("2023-06-05", periods=2 * n, freq="h")
    stamps = hours[hours.day_of_week < 5][:n]
    rng = np.random.default_rng(seed)
    close = 1.1 * np.exp(np.cumsum(rng.normal(0.0, 0.001, n)))
    open_ = close * np.exp(rng.normal(0, 0.0003, n))
    spread = np.abs(rng.normal(0, 0.0004, n))
    return pd.DataFrame(
        {
            "timestamp": stamps,
            "open": open_,
            "high": np.maximum(open_, close) * (1 + spread),
            "low": np.minimum(open_, close) * (1 - spread),
            "close": close,
            "volume": rng.integers(100, 1000, n).astype(float),
        }
    )


def test_the_hourly_dag_runs_intraday_bars_and_reports_hourly_sharpe(airflow_env):
    """5,000 hourly FX bars through retune_hourly at a logical time of day: the calendar is
    inferred (1h, 24x5: 6,240 bars a year), the run reads the bars up to its hour only, its
    window is the config's span in bars, and the report annualizes Sharpe for hourly bars."""
    import yaml

    bars = hourly_fx_bars()
    logical = bars["timestamp"].iloc[-10]  # bars after the run's hour exist in the file
    bars.to_csv(Path(airflow_env["RETUNE_DATA_DIR"]) / "eurusd_1h.csv", index=False)
    config = yaml.safe_load((ROOT / "pipelines" / "defaults" / "hourly.yaml").read_text())
    config.update(  # a tiny budget: the plumbing is under test, not the search
        epochs=1,
        seeds_per_trial=1,
        window="2mo",
        recent_window="1mo",
        n_folds=1,
        holdout_folds=2,
        finetune_bars=200,
        race_seeds=0,
        baseline_family=None,
        promotion_policy="auto",
        strategy_grid_points=2,
    )
    config["search_space"] = {
        "hidden_size": {"type": "categorical", "choices": [8]},
        **{k: v for k, v in config["search_space"].items() if k in ("lr", "entry_threshold")},
    }
    configs = Path(airflow_env["RETUNE_HOME"]) / "configs"
    (configs / "hourly_tiny.yaml").write_text(yaml.safe_dump(config))
    conf = {"n_trials": 2, "timeout_minutes": 5, "data": "csv:eurusd_1h.csv", "config": "hourly_tiny"}
    out = run(
        [
            str(BIN / "airflow"),
            "dags",
            "test",
            "retune_hourly",
            f"{logical:%Y-%m-%dT%H:%M:%S}+00:00",
            "--conf",
            json.dumps(conf),
        ],
        airflow_env,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    ours = [r for r in status(airflow_env)["runs"] if r["run_id"].startswith("hourly__")]
    assert len(ours) == 1 and ours[0]["state"] == "success", ours
    run_dir = Path(airflow_env["RETUNE_HOME"]) / "runs" / ours[0]["run_id"]
    calendar = json.loads((run_dir / "calendar.json").read_text())
    assert calendar == {
        "bar_frequency": "1h",
        "session": "24x5",
        "bars_per_year": 6240.0,
        "description": "1h bars, session 24x5: 6,240 bars a year",
    }
    stored = pd.read_parquet(run_dir / "bars.parquet")
    assert stored["timestamp"].iloc[-1] == logical  # up to the run's hour, not its day
    narrowing = json.loads((run_dir / "narrowing.json").read_text())
    assert narrowing["evidence"]["recent_bars"] == 520  # the 1-month recent regime, in hourly bars
    search = json.loads((run_dir / "search.json").read_text())
    html = Path(ours[0]["report"]).read_text()
    assert "6,240 bars a year" in html and "Sharpe, Sortino and Calmar are annualized for 1h bars" in html
    assert "per-bar Sharpe × √6,240" in html
    assert ours[0]["best_value"] == pytest.approx(search["best_value"])
    # the model knows the hour (a known-in-advance feature), recorded with it for live parity
    meta = json.loads(
        (
            Path(airflow_env["RETUNE_HOME"]) / "models" / "eurusd_1h" / ours[0]["run_id"] / "meta.json"
        ).read_text()
    )
    weekdays = ["dow_mon", "dow_tue", "dow_wed", "dow_thu", "dow_fri"]  # Monday to Friday bars
    assert meta["feature_kinds"]["known_in_advance"] == [
        "dow_sin",
        "dow_cos",
        "tod_sin",
        "tod_cos",
        *weekdays,
    ]
