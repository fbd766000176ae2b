"""Reviewed promotion through real DAG runs: `airflow dags test` parks the `review` task awaiting
input; an `airflow api-server` on the same metadata DB takes the answer through Airflow's HITL REST
API (as the "Required actions" UI does); a timeout is resolved by the scheduler's own sweep.

Each flow runs on one store backend (approve/reject/timeout on PostgreSQL, production's; the fleet
run on SQLite): the store's review semantics are tested on both in tests/db/test_store_review.py,
and what these add, Airflow driving them, does not depend on the backend."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from e2e_support import AS_OF, BIN, ROOT, run

from devtools.airflow_stack import RestClient, free_port

pytestmark = pytest.mark.slow

KEY = "reviewed_key"
REVIEWED_CONFIG = {
    "model_key": KEY,
    "promotion_policy": "review",
    # a gate that this small planted-signal search passes: the review is what is under test
    "dsr_threshold": 0.0,
    "benchmark_alpha": 1.0,
    "holdout_benchmark_alpha": 1.0,
    "max_drawdown_limit": 1.0,
    "champion_alpha": 1.0,  # a challenger that merely exists beats the champion
    "champion_margin": -1.0e9,
    "epochs": 3,
    "window_bars": 600,
    "n_folds": 2,
    "val_bars": 100,
    "strategy_grid_points": 2,
    "search_space": {
        "lr": {"type": "loguniform", "low": 0.001, "high": 0.01},
        "seq_len": {"type": "int", "low": 5, "high": 10, "step": 5},
        "long_short": {"type": "categorical", "choices": [False, True]},
    },
}
PASSWORD = "review-test-password"


def planted_bars(n: int = 700, seed: int = 3) -> pd.DataFrame:
    """Long up and down regimes under noise: a signal a small LSTM finds in a few epochs."""
    rng = np.random.default_rng(seed)
    regime = np.where((np.arange(n) // 120) % 2 == 0, 1.0, -1.0)
    close = 100 * np.exp(np.cumsum(0.004 * regime + rng.normal(0, 0.006, n)))
    open_ = close * np.exp(rng.normal(0, 0.002, n))
    return pd.DataFrame(
        {
            "timestamp": pd.bdate_range(end=AS_OF, periods=n),
            "open": open_,
            "high": np.maximum(open_, close) * 1.002,
            "low": np.minimum(open_, close) * 0.998,
            "close": close,
            "volume": rng.integers(1_000, 10_000, n).astype(float),
        }
    )


class Api(RestClient):
    """The REST client, plus waiting for a run's review request."""

    def pending_review(self, run: DagRun, timeout: float = 600) -> dict:
        """The review request of ``run``, once it waits for an answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if run.ended():
                raise AssertionError(f"the DAG run ended without asking:\n{run.output()}")
            details = self.call("GET", "/api/v2/dags/~/dagRuns/~/hitlDetails")["hitl_details"]
            waiting = [d for d in details if not d["response_received"]]
            if waiting:
                return waiting[0]
            time.sleep(2)
        run.kill()
        raise AssertionError(f"no review was requested:\n{run.output()}")


@pytest.fixture(scope="module")
def review_env(request, e2e_env, tmp_path_factory):
    """Airflow (metadata on SQLite) with an api-server; our store and the Optuna studies on SQLite
    or on the throwaway PostgreSQL database."""
    base = tmp_path_factory.mktemp(f"review-{request.param}")
    home, airflow_home = base / "var", base / "airflow"
    (home / "configs").mkdir(parents=True)
    airflow_home.mkdir()
    (home / "configs" / "reviewed.yaml").write_text(yaml.safe_dump(REVIEWED_CONFIG))
    planted_bars().to_csv(Path(e2e_env["RETUNE_DATA_DIR"]) / "planted.csv", index=False)
    passwords = airflow_home / "passwords.json"
    passwords.write_text(json.dumps({"ops_bob": PASSWORD}))
    port = free_port()
    env = dict(
        e2e_env,
        RETUNE_HOME=str(home),
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{airflow_home / 'airflow.db'}",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="ops_bob:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
        RETUNE_DB_URL=(
            request.getfixturevalue("postgres_url")
            if request.param == "postgresql"
            else f"sqlite:///{home / 'retune.db'}"
        ),
    )
    for init in (["airflow", "db", "migrate"], ["retune", "db", "upgrade"]):  # as a deployment does
        out = run([str(BIN / init[0]), *init[1:]], env)
        assert out.returncode == 0, out.stderr[-3000:]
    server_log = (base / "api-server.log").open("w")  # kept for a failure's post-mortem
    server = subprocess.Popen(
        [str(BIN / "airflow"), "api-server", "--port", str(port), "--host", "127.0.0.1"],
        env=env,
        cwd=ROOT,
        stdout=server_log,
        stderr=subprocess.STDOUT,
    )
    api = Api(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                api.login("ops_bob", PASSWORD)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(2)
        yield env, api
    finally:
        server.terminate()
        server.wait(timeout=30)
        server_log.close()


class DagRun:
    """`airflow dags test` in the background, its log in a file (a full pipe would stall it)."""

    def __init__(self, env: dict, log: Path, dag_id: str = "retune_daily", **conf):
        conf = {"n_trials": 3, "as_of": AS_OF, "data": "csv:planted.csv", "config": "reviewed", **conf}
        self.log = log
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [str(BIN / "airflow"), "dags", "test", dag_id, "--conf", json.dumps(conf)],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text()[-5000:]

    def ended(self) -> bool:
        return self.process.poll() is not None

    def kill(self) -> None:
        self.process.kill()  # `airflow dags test` ignores SIGTERM while it waits for input
        self.process.wait()

    def finish(self) -> str:
        try:
            self.process.wait(timeout=600)
        except subprocess.TimeoutExpired:
            self.kill()
        assert self.process.returncode == 0, self.output()
        return self.log.read_text()


def store(env: dict) -> tuple[list, list, bytes | None]:
    """This model key's versions and audit rows, and production.yaml's bytes."""
    import sqlalchemy as sa

    engine = sa.create_engine(env["RETUNE_DB_URL"])
    try:
        with engine.connect() as conn:
            versions = conn.execute(
                sa.text(
                    "SELECT version, state, source_run FROM retune_config_versions "
                    "WHERE model_key = :key ORDER BY version"
                ),
                {"key": KEY},
            ).all()
            audit = conn.execute(
                sa.text(
                    "SELECT action, actor, reason, from_version, to_version FROM retune_audit "
                    "WHERE model_key = :key ORDER BY at, id"
                ),
                {"key": KEY},
            ).all()
    finally:
        engine.dispose()
    production = Path(env["RETUNE_HOME"]) / "config" / "production.yaml"
    return (
        [tuple(v) for v in versions],
        [tuple(a) for a in audit],
        (production.read_bytes() if production.exists() else None),
    )


def store_with_answer(env: dict, reason: str, timeout: float = 30) -> tuple[list, list, bytes | None]:
    """``store`` once the api-server has audited the answer given with ``reason``: it writes that
    row after Airflow accepted the answer, and `airflow dags test` may act on the answer first."""
    deadline = time.monotonic() + timeout
    while not any(a[0].startswith("answered_") and a[2] == reason for a in store(env)[1]):
        assert time.monotonic() < deadline, f"the answer {reason!r} was not audited: {store(env)[1]}"
        time.sleep(0.5)
    return store(env)


def config_asset_events(env: dict) -> int:
    """Events of the production-config Asset in Airflow's metadata DB (what downstream DAGs see)."""
    import sqlalchemy as sa

    engine = sa.create_engine(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT count(*) FROM asset_event JOIN asset ON asset.id = asset_event.asset_id "
                    "WHERE asset.name = 'retune_production_config'"
                )
            ).scalar_one()
    finally:
        engine.dispose()


def expire_review_deadline(env: dict, timeout: float = 60) -> None:
    """Move the waiting review's deadline (``task_instance.trigger_timeout``) into the past.

    The review's request is listed a moment before its task instance enters ``awaiting_input``:
    retry until it has.
    """
    import sqlalchemy as sa

    engine = sa.create_engine(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    deadline, moved = time.monotonic() + timeout, 0
    try:
        while not moved and time.monotonic() < deadline:
            with engine.begin() as conn:
                moved = conn.execute(
                    sa.text(
                        "UPDATE task_instance SET trigger_timeout = :past "
                        "WHERE task_id = 'review' AND state = 'awaiting_input'"
                    ),
                    {"past": "2000-01-01 00:00:00.000000"},
                ).rowcount
            if not moved:
                time.sleep(0.5)
    finally:
        engine.dispose()
    assert moved == 1


def answer(api: Api, detail: dict, option: str, reason: str) -> None:
    ti = detail["task_instance"]
    assert ti["task_id"].rpartition(".")[2] == "review"
    assert "deflated_sharpe" in detail["body"] and "retune approve" in detail["body"]
    api.call(
        "PATCH",
        f"/api/v2/dags/{ti['dag_id']}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}/"
        f"{ti['map_index']}/hitlDetails",
        {"chosen_options": [option], "params_input": {"reason": reason}},
    )


@pytest.mark.parametrize("review_env", ["postgresql"], indirect=True)
def test_approve_then_reject_then_timeout(review_env, tmp_path):
    env, api = review_env

    # 1. approve: the proposal becomes the active version, the responder is in the audit
    run_1 = DagRun(env, tmp_path / "approve.log")
    answer(api, api.pending_review(run_1), "Approve", "gate and report look right")
    log = run_1.finish()
    versions, audit, production = store_with_answer(env, "gate and report look right")
    assert [(v, s) for v, s, _ in versions] == [(1, "active")]
    assert audit[-1] == ("approve", "airflow:ops_bob", "gate and report look right", None, 1)
    # the answer as Airflow accepted it, recorded by the api-server (what a retried try would act on)
    assert audit[-2][:3] == ("answered_approve", "airflow:ops_bob", "gate and report look right")
    assert production is not None and yaml.safe_load(production)["models"][KEY]["config_version"] == 1
    assert "publish" in log and config_asset_events(env) == 1

    # 2. reject: recorded with the reason; store's active version and production.yaml unchanged
    run_2 = DagRun(env, tmp_path / "reject.log")
    answer(api, api.pending_review(run_2), "Reject", "drawdown in fold 1 too deep")
    run_2.finish()
    after_reject = store(env)
    assert [(v, s) for v, s, _ in after_reject[0]] == [(1, "active"), (2, "rejected")]
    assert after_reject[1][-1] == ("reject", "airflow:ops_bob", "drawdown in fold 1 too deep", None, 2)
    assert after_reject[2] == production
    assert config_asset_events(env) == 1  # nothing changed, no event

    # 3. timeout: nobody answers; the scheduler's timeout sweep applies the only default (Reject)
    run_3 = DagRun(env, tmp_path / "timeout.log", review_timeout_minutes=1)
    api.pending_review(run_3)
    expire_review_deadline(env)  # as if the minute had passed, without waiting for it
    sweep = run(
        [
            str(BIN / "python"),
            "-c",
            "from airflow.jobs.job import Job\n"
            "from airflow.jobs.scheduler_job_runner import SchedulerJobRunner\n"
            "SchedulerJobRunner(job=Job()).check_awaiting_input_timeouts()",
        ],
        env,
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    run_3.finish()
    versions, audit, after_timeout = store(env)
    assert [(v, s) for v, s, _ in versions] == [(1, "active"), (2, "rejected"), (3, "expired")]
    assert audit[-1][:2] == ("timeout", "airflow:timeout") and audit[-1][4] == 3
    assert after_timeout == production  # never approved by default


@pytest.mark.parametrize("review_env", ["sqlite"], indirect=True)
def test_a_fleet_run_asks_only_for_its_reviewed_key(review_env, tmp_path):
    """In the fleet DAG each key's review sits in its mapped group: the one under policy review
    asks (for its own proposal), the one under auto does not, and the answer lands on the right key."""
    env, api = review_env
    auto = {**REVIEWED_CONFIG, "model_key": "fleet_auto_key", "promotion_policy": "auto"}
    (Path(env["RETUNE_HOME"]) / "configs" / "fleet_auto.yaml").write_text(yaml.safe_dump(auto))
    before = store(env)[0]
    fleet = DagRun(
        env, tmp_path / "fleet.log", dag_id="retune_daily_fleet", configs=["fleet_auto", "reviewed"]
    )
    request = api.pending_review(fleet)
    assert request["task_instance"]["task_id"] == "model.review"
    assert request["task_instance"]["map_index"] == 1  # "reviewed", the second config
    assert "__reviewed" in request["body"]
    answer(api, request, "Approve", "fleet proposal checked")
    fleet.finish()
    versions, audit, production = store_with_answer(env, "fleet proposal checked")
    assert len(versions) == len(before) + 1
    version, state, source_run = versions[-1]
    assert state == "active" and source_run.endswith("__reviewed")
    assert audit[-1][:3] == ("approve", "airflow:ops_bob", "fleet proposal checked")
    assert audit[-2][:3] == ("answered_approve", "airflow:ops_bob", "fleet proposal checked")  # this key's
    assert yaml.safe_load(production or b"")["models"][KEY]["config_version"] == version
