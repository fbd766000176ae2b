"""Search workers as real processes on one PostgreSQL study: exactly N trials, kills, an outage.

Workers are separate interpreters (``search_worker_main.py``), not threads: that is what the
DAG's mapped tasks are. Heartbeats are shortened (``RETUNE_HEARTBEAT_SECONDS=1``: a killed
worker's trial is stale after 2 s) so the fault tests take seconds, not minutes.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from search_worker_main import SPACE, config, settings

from devtools.throwaway_pg import PostgresUnavailable, throwaway_database
from pipelines.search.heartbeats import make_storage
from pipelines.search.seeding import prepare_study
from pipelines.search.study import study_name

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("search_worker_main.py")


@pytest.fixture(scope="module")
def optuna_pg_url():
    """A throwaway PostgreSQL database of its own: Optuna's tables must not land in the shared
    ``postgres_url`` database, whose schema a migration test compares with our ORM."""
    try:
        with throwaway_database("retune_optuna_test") as url:
            yield url
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


def worker_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(RETUNE_HEARTBEAT_SECONDS="1", PYTHONWARNINGS="ignore", **extra)
    return env


def start_worker(url: str, run_id: str, n: int, worker: int, log: Path, **env: str) -> subprocess.Popen:
    with log.open("a") as out:
        return subprocess.Popen(
            [sys.executable, str(WORKER), url, run_id, str(n), str(worker)],
            env=worker_env(**env),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )


def prepared(url: str, run_id: str, n: int) -> None:
    prepare_study(run_id, config(), SPACE, settings(n), url)


def load(url: str, run_id: str) -> optuna.Study:
    return optuna.load_study(study_name=study_name(run_id), storage=make_storage(url))


def by_state(study: optuna.Study) -> dict[str, list[optuna.trial.FrozenTrial]]:
    out: dict[str, list[optuna.trial.FrozenTrial]] = {}
    for t in study.trials:
        out.setdefault(t.state.name, []).append(t)
    return out


def assert_exactly(study: optuna.Study, n: int) -> None:
    """n COMPLETE trials, each with a finite value; nothing RUNNING or WAITING; unique numbers."""
    states = by_state(study)
    complete = states.get("COMPLETE", [])
    assert len(complete) == n, {k: len(v) for k, v in states.items()}
    assert all(t.value is not None and math.isfinite(t.value) for t in complete)
    assert "RUNNING" not in states and "WAITING" not in states
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))


def finish(procs: list[subprocess.Popen], timeout: float = 120) -> list[int]:
    deadline = time.monotonic() + timeout
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=max(deadline - time.monotonic(), 1)))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(p.wait())
    return codes


def test_two_worker_processes_share_one_study_and_stop_at_exactly_n(optuna_pg_url, tmp_path):
    run_id, n = "parallel-two", 8
    prepared(optuna_pg_url, run_id, n)
    log = tmp_path / "workers.log"
    procs = [start_worker(optuna_pg_url, run_id, n, w, log) for w in (0, 1)]
    assert finish(procs) == [0, 0], log.read_text()[-4000:]
    assert log.read_text().count("torch threads: 1") == 2  # the trainer pins each process to one thread
    study = load(optuna_pg_url, run_id)
    assert_exactly(study, n)
    assert len(study.trials) == n  # nothing failed, nothing extra
    ran = {t.user_attrs["worker"] for t in study.trials}
    assert ran == {0, 1}, "both processes ran trials"
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(params)) == n  # the workers' samplers are seeded apart: no repeated draws
    # a worker run again after the budget is spent changes nothing (an Airflow retry)
    again = start_worker(optuna_pg_url, run_id, n, 1, log)
    assert finish([again]) == [0]
    assert len(load(optuna_pg_url, run_id).trials) == n


def wait_for_running_trial(url: str, run_id: str, after: set[int], timeout: float = 60) -> int:
    """The number of a trial that is RUNNING (not one of ``after``), has drawn its parameters (a
    trial killed before it samples has none to retry) and has been training for a moment."""
    storage = make_storage(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        study = optuna.load_study(study_name=study_name(run_id), storage=storage)
        running = [
            t for t in study.trials if t.state == TrialState.RUNNING and t.params and t.number not in after
        ]
        if running:
            time.sleep(0.3)  # mid-trial: it is training
            return running[0].number
        time.sleep(0.1)
    raise AssertionError("no trial started")


def wait_for_log(log: Path, lines: tuple[str, ...], timeout: float = 120) -> None:
    """Until every one of ``lines`` is in the workers' log (a loaded machine starts them slowly)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        if all(line in text for line in lines):
            return
        time.sleep(0.1)
    raise AssertionError(f"the workers never logged {lines}")


def test_a_worker_killed_three_times_mid_trial_loses_no_trial(optuna_pg_url, tmp_path):
    run_id, n = "killed-worker", 5
    prepared(optuna_pg_url, run_id, n)
    log = tmp_path / "worker.log"
    killed: set[int] = set()
    for _ in range(3):
        proc = start_worker(optuna_pg_url, run_id, n, 0, log)
        killed.add(wait_for_running_trial(optuna_pg_url, run_id, killed))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    last = start_worker(optuna_pg_url, run_id, n, 0, log)  # the next attempt fails and retries them
    assert finish([last]) == [0], log.read_text()[-4000:]

    study = load(optuna_pg_url, run_id)
    assert_exactly(study, n)
    states = by_state(study)
    failed = states["FAIL"]
    assert {t.number for t in failed} == killed  # the three killed trials, failed as stale
    # each killed trial's parameters were queued again (RetryHeartbeatStaleTrialCallback, max_retry=1):
    # a retry that is killed too is not queued a third time; a fresh trial takes its slot instead
    retries = {t.system_attrs["failed_trial"]: t for t in study.trials if "failed_trial" in t.system_attrs}
    for trial in failed:
        if "failed_trial" not in trial.system_attrs:
            assert trial.number in retries, f"killed trial {trial.number} was not retried"
            assert retries[trial.number].params == trial.params


# --- a PostgreSQL outage, on a private throwaway server ----------------------------------------


def _pg_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not versions:
        pytest.fail("the outage test needs PostgreSQL's server binaries (/usr/lib/postgresql/*/bin)")
    return versions[-1].parent


def _as_server_user(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root: use the postgres system user then
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivatePostgres:
    """initdb + pg_ctl under a temporary directory, on its own port: safe to stop and start."""

    def __init__(self) -> None:
        self.bin = _pg_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="retune-pg-"))
        self.port = _free_port()
        os.chmod(self.dir, 0o777)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        out = subprocess.run(
            _as_server_user([str(self.bin / args[0]), *args[1:]]), capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stdout + out.stderr

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.dir / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        subprocess.run(
            _as_server_user([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_postgres():
    server = PrivatePostgres()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.remove()


OUTAGE_SECONDS = 20  # at least; longer if worker 1 has not given up yet (it may be mid-trial)
GIVE_UP_WITHIN_SECONDS = 90  # well inside worker 0's patience of 120 s


def test_a_postgres_outage_mid_search_is_ridden_out_or_fails_cleanly(private_postgres, tmp_path):
    """PostgreSQL stops for 20 s or more while two workers search. Worker 0 waits it out (patience 120 s);
    worker 1 gives up after 3 s (its task fails, as Airflow would see it) and is started again
    once the server is back. Either way: no trial COMPLETE without a value, and the study ends
    with exactly N finished trials, the broken ones failed and retried."""
    url, run_id, n = private_postgres.url, "outage", 10
    prepared(url, run_id, n)
    log = tmp_path / "workers.log"
    patient = start_worker(url, run_id, n, 0, log, RETUNE_STORAGE_PATIENCE_SECONDS="120")
    impatient = start_worker(url, run_id, n, 1, log, RETUNE_STORAGE_PATIENCE_SECONDS="3")
    wait_for_running_trial(url, run_id, set())
    wait_for_log(log, ("search worker 0:", "search worker 1:"))  # both are searching, not starting
    time.sleep(1.0)
    private_postgres.stop()
    try:
        time.sleep(OUTAGE_SECONDS)
        deadline = time.monotonic() + GIVE_UP_WITHIN_SECONDS - OUTAGE_SECONDS
        while impatient.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert impatient.poll() not in (None, 0), "worker 1 should have given up during the outage"
        assert patient.poll() is None, "worker 0 should still be waiting for the database"
    finally:
        private_postgres.start()
    output = log.read_text()
    assert "optuna storage unreachable" in output and "giving up" in output
    retried = start_worker(url, run_id, n, 1, log)  # what Airflow's retry of the task does
    assert finish([patient, retried]) == [0, 0], log.read_text()[-6000:]
    study = load(url, run_id)
    assert_exactly(study, n)
    for trial in study.trials:
        if trial.state == TrialState.FAIL:
            assert trial.values is None  # a broken trial never carries a value
