"""What Airflow costs: a daily run under the real scheduler vs the same steps in one process.

Arms, interleaved over repeats, on the same S&P 500 bars, budget and daily default config:

* ``retune run`` — every step in one Python process;
* ``retune_daily`` under Airflow — api-server, scheduler (LocalExecutor) and dag-processor on a
  PostgreSQL metadata database, triggered through the REST API, timed from the trigger until
  the API reports success.

Our store and the Optuna studies are on PostgreSQL in both arms. Every run gets its own model
key, so no run inherits another's model, studies or narrowing evidence.
Value: median warm DAG-run time / median warm one-process time; ``overhead_s`` is the
difference, which a longer search amortizes.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from devtools.airflow_stack import BIN, AirflowStack, project_env
from devtools.throwaway_pg import throwaway_database

ROOT = Path(__file__).resolve().parents[1]

NAME = "airflow_overhead_ratio"
REPEATS = 3  # the first of each arm is the cold start (empty numba cache, first imports): reported apart
# the daily DAG's default budget (20 trials) on the daily default config
CONF = {"data": "sample:sp500", "as_of": "2018-12-31", "n_trials": 20, "timeout_minutes": 30}


def _config(home: Path, name: str) -> str:
    daily = yaml.safe_load((ROOT / "pipelines" / "defaults" / "daily.yaml").read_text())
    (home / "configs" / f"{name}.yaml").write_text(
        yaml.safe_dump({**daily, "model_key": name, "promotion_policy": "auto"})
    )
    return name


def run() -> dict:
    times: dict[str, list[float]] = {"one_process": [], "airflow": []}
    with tempfile.TemporaryDirectory() as tmp, throwaway_database() as store, throwaway_database() as meta:
        home = Path(tmp) / "var"
        (home / "configs").mkdir(parents=True)
        env = project_env(RETUNE_HOME=str(home), RETUNE_DB_URL=store)
        with AirflowStack(env, Path(tmp) / "airflow", meta) as stack:
            stack.wait_for_dag("retune_daily")
            for repeat in range(REPEATS):
                name = _config(home, f"bench_cli_{repeat}")
                started = time.perf_counter()
                out = subprocess.run(
                    [str(BIN / "retune"), "run", "--run-id", name, "--config", name,
                     *(f"--{k.replace('_', '-')}={v}" for k, v in CONF.items())],
                    env=env, cwd=ROOT, capture_output=True, text=True,
                )  # fmt: skip
                times["one_process"].append(time.perf_counter() - started)
                if out.returncode != 0:
                    raise RuntimeError(f"retune run failed:\n{out.stderr[-3000:]}")

                name = _config(home, f"bench_dag_{repeat}")
                started = time.perf_counter()
                run_id = stack.trigger("retune_daily", {**CONF, "config": name}, name)
                finished = stack.wait_for_run("retune_daily", run_id, poll=0.5)
                times["airflow"].append(time.perf_counter() - started)
                if finished["state"] != "success":
                    raise RuntimeError(f"DAG run {run_id} {finished['state']}:\n{stack.logs()}")
    cold = {arm: round(t[0], 1) for arm, t in times.items()}
    medians = {arm: statistics.median(t[1:]) for arm, t in times.items()}
    return {
        "value": round(medians["airflow"] / medians["one_process"], 3),
        "unit": "DAG run time under the scheduler / `retune run` time",
        "goal": "<= 1.2",
        "details": {
            "median_warm_s": {arm: round(m, 1) for arm, m in medians.items()},
            "cold_s": cold,
            "overhead_s": round(medians["airflow"] - medians["one_process"], 1),
            "scheduler": "python -m retune_airflow.scheduler (task libraries preloaded)",
            "runs_s": {arm: [round(t, 1) for t in ts] for arm, ts in times.items()},
            "conf": CONF,
            "executor": "LocalExecutor",
            "stores": "PostgreSQL (Airflow metadata, our tables, Optuna)",
        },
    }
