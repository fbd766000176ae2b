"""The Airflow deployment of ``airflow_stack`` under CeleryExecutor: Redis as the broker (on a
database index of its own), the metadata database as Celery's result backend, and named Celery
workers as separate processes that a test can start, and kill, one by one.

Used by the Celery end-to-end tests and by the ``celery_2_workers_speedup`` benchmark.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from devtools.airflow_stack import BIN, ROOT, AirflowStack, _signal_group

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
HERE = Path(__file__).resolve().parent


@contextlib.contextmanager
def redis_database() -> Iterator[int]:
    """An empty Redis database index (of 1..15; 0 is everyone's default) for one session's broker,
    flushed afterwards. Redis is required, like PostgreSQL: a test fails when it is down."""
    import redis

    indexes = list(range(1, 16))
    random.shuffle(indexes)
    for index in indexes:
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=index, socket_connect_timeout=5)
        try:
            if client.dbsize() == 0 and client.set("retune:test:claimed", "1", nx=True):
                break
        except redis.ConnectionError as exc:
            raise RuntimeError(
                f"Redis is required but not reachable at {REDIS_HOST}:{REDIS_PORT}: {exc} "
                "(CI: .ci/run starts it)"
            ) from None
        client.close()
    else:
        raise RuntimeError("no empty Redis database index (1..15) for the Celery broker")
    try:
        yield index
    finally:
        client.flushdb()
        client.close()


def session_pids(session: int) -> list[int]:
    """Live processes of a session (a worker started with ``start_new_session`` leads its own)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[3]) == session and fields[0] != "Z":
                pids.append(int(stat.parent.name))
    return pids


class CeleryStack(AirflowStack):
    """``with CeleryStack(env, airflow_home, metadata_url, redis_db) as stack:``, then
    ``stack.start_workers("w1", "w2")``. A task instance's ``hostname`` is its worker's name."""

    def __init__(self, env: dict[str, str], airflow_home: Path, metadata_url: str, redis_db: int):
        super().__init__(env, airflow_home, metadata_url)
        self.env.update(
            AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
            AIRFLOW__CELERY__BROKER_URL=f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
            AIRFLOW__CELERY__RESULT_BACKEND=f"db+{metadata_url}",  # postgresql+psycopg2://
            AIRFLOW__CELERY__WORKER_CONCURRENCY="1",
            AIRFLOW__CELERY__SYNC_PARALLELISM="1",
            # a worker that died is noticed within seconds, not Airflow's default 5 minutes
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="12",
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL="2",
            # each worker reports its own name as the task instances' hostname (worker_hostname.py)
            AIRFLOW__CORE__HOSTNAME_CALLABLE="worker_hostname.hostname",
            PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), self.env.get("PYTHONPATH", "")])),
            RETUNE_WORKER_NAME="airflow-component",
        )
        self.workers: dict[str, subprocess.Popen] = {}

    def start_workers(self, *names: str, timeout: float = 180) -> None:
        """Celery workers (concurrency 1, task libraries preloaded), each a process group of its own;
        returns once every one of them has said it is ready."""
        self.launch_workers(*names)
        self.wait_for_workers(*names, timeout=timeout)

    def launch_workers(self, *names: str) -> None:
        """Start the workers without waiting: they preload while the caller waits for something else."""
        for name in names:
            log = (self.home / f"worker-{name}.log").open("w")
            self.workers[name] = subprocess.Popen(
                [str(BIN / "python"), "-m", "retune_airflow.celery_worker", "--concurrency", "1",
                 "--celery-hostname", f"{name}@%h", "--skip-serve-logs"],
                env=dict(self.env, RETUNE_WORKER_NAME=name),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def wait_for_workers(self, *names: str, timeout: float = 180) -> None:
        """Until each worker's log says it is ready."""
        deadline = time.monotonic() + timeout
        for name in names:
            log = self.home / f"worker-{name}.log"
            while f"{name}@" not in log.read_text() or " ready." not in log.read_text():
                if self.workers[name].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Celery worker {name} did not start:\n{log.read_text()[-4000:]}")
                time.sleep(0.5)

    def kill_worker(self, name: str) -> None:
        """SIGKILL the worker and everything it started (its pool, the task supervisor and the task,
        which runs in a process group of its own), at once, as when its machine dies."""
        process = self.workers[name]
        for pid in session_pids(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop_workers(self) -> None:
        for process in self.workers.values():
            _signal_group(process, signal.SIGTERM)
        for process in self.workers.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
        for process in self.workers.values():
            for pid in session_pids(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.workers.clear()

    def __exit__(self, *exc) -> None:
        self.stop_workers()
        super().__exit__(*exc)

    def hostnames(self, dag_id: str, run_id: str, task_id: str | None = None) -> list[str]:
        """Where each (mapped) instance of ``task_id`` (of every task: None) ran, by its Celery
        worker's name."""
        items = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return [t["hostname"] for t in items if task_id is None or t["task_id"] == task_id]
