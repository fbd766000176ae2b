"""A real Airflow deployment in subprocesses: api-server, scheduler (LocalExecutor) and
dag-processor on a PostgreSQL metadata database, driven through the public REST API.

Used by the scheduler end-to-end test and by the ``airflow_overhead_ratio`` benchmark.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
USER, PASSWORD = "ops", "stack-test-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def project_env(**extra: str) -> dict[str, str]:
    """This process's environment, with Airflow loading this project's DAGs and plugins and no
    example DAGs, and ``extra`` on top; Optuna studies go to the store (no RETUNE_OPTUNA_URL)."""
    env = dict(
        os.environ,
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        PYTHONWARNINGS="ignore",
    )
    env.pop("RETUNE_OPTUNA_URL", None)
    return env | extra


class RestClient:
    """Airflow's public REST API as an operator's script would use it."""

    def __init__(self, base: str):
        self.base = base
        self.token = ""

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            self.base + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def login(self, user: str, password: str) -> None:
        self.token = self.call("POST", "/auth/token", {"username": user, "password": password})[
            "access_token"
        ]


class AirflowStack(RestClient):
    """Start with ``with AirflowStack(env, airflow_home, metadata_url) as stack:``."""

    COMPONENTS = (
        ["airflow", "api-server", "--host", "127.0.0.1", "--port", "{port}"],
        ["python", "-m", "retune_airflow.scheduler"],  # `airflow scheduler`, task libraries preloaded
        ["airflow", "dag-processor"],
    )

    def __init__(self, env: dict[str, str], airflow_home: Path, metadata_url: str):
        self.port = free_port()
        self.home = airflow_home
        self.home.mkdir(parents=True, exist_ok=True)
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps({USER: PASSWORD}))
        super().__init__(f"http://127.0.0.1:{self.port}")
        self.env = dict(
            env,
            AIRFLOW_HOME=str(airflow_home),
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=metadata_url,
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM="4",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.base}/execution/",
            AIRFLOW__API__BASE_URL=self.base,
            AIRFLOW__API_AUTH__JWT_SECRET=uuid.uuid4().hex,
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{USER}:admin",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
            AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1",
            # manual runs only: a scheduled run would queue ahead of the one under test
            RETUNE_DAILY_SCHEDULE="none",
            RETUNE_WEEKLY_SCHEDULE="none",
        )
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> AirflowStack:
        migrate = subprocess.run(
            [str(BIN / "airflow"), "db", "migrate"], env=self.env, cwd=ROOT, capture_output=True, text=True
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{migrate.stderr[-3000:]}")
        for args in self.COMPONENTS:
            log = (self.home / f"{args[-1]}.log").open("w")
            self.processes.append(
                subprocess.Popen(
                    [str(BIN / args[0]), *(a.format(port=self.port) for a in args[1:])],
                    env=self.env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a group of its own: stopping it stops its children
                )
            )
        self._wait_for_api()
        return self

    def __exit__(self, *exc) -> None:
        """Stop every component with the processes it started (executor workers, log server)."""
        for process in self.processes:
            _signal_group(process, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
        time.sleep(1)
        for process in self.processes:  # children that outlived their parent
            _signal_group(process, signal.SIGKILL)

    def logs(self, tail: int = 4000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-tail:]}" for p in sorted(self.home.glob("*.log")))

    def _wait_for_api(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"an Airflow component exited:\n{self.logs()}")
            try:
                self.login(USER, PASSWORD)
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(1)
        raise RuntimeError(f"the api-server did not come up:\n{self.logs()}")

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        """Until the dag-processor has parsed ``dag_id`` and it is unpaused."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                dag = self.call("GET", f"/api/v2/dags/{dag_id}")
                if dag.get("is_paused"):
                    self.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
                return
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
            time.sleep(2)
        raise RuntimeError(f"{dag_id} was never parsed:\n{self.logs()}")

    def trigger(self, dag_id: str, conf: dict, run_id: str) -> str:
        run = self.call(
            "POST",
            f"/api/v2/dags/{dag_id}/dagRuns",
            {"dag_run_id": run_id, "logical_date": None, "conf": conf},
        )
        return run["dag_run_id"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 1200, poll: float = 2) -> dict:
        """The finished DAG run (state success or failed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return run
            if any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"an Airflow component exited:\n{self.logs()}")
            time.sleep(poll)
        raise TimeoutError(f"{dag_id} {run_id} did not finish in {timeout} s:\n{self.logs()}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        items = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {
            t["task_id"] + (f"[{t['map_index']}]" if t["map_index"] >= 0 else ""): t["state"] for t in items
        }


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
