"""``retune_daily`` on CeleryExecutor: trials per minute with 2 Celery workers vs 1, same budget.

A real deployment in processes (``tests/e2e/celery_stack.py``): api-server, scheduler and
dag-processor on a throwaway PostgreSQL metadata database, Redis as the broker on a database
index of its own, Celery workers of concurrency 1 (task libraries preloaded), our store and the
Optuna studies on PostgreSQL. Every run is triggered through the REST API with ``workers=2``
(two mapped search workers) and the same budget; with one Celery worker the two search workers
run one after the other, with two they run side by side. Arms alternate 1, 2, 2, 1 Celery
workers; each run has a model key of its own (no run inherits another's model or studies).
Value: median trials/min with 2 Celery workers / median with 1, the wall time from the trigger
to the API reporting success — the whole DAG run, its serial steps (validate, features,
fine-tune, evaluate, report) included. ``details.search_speedup`` is the same ratio over the
search alone (the study's first trial start to its last trial end).
``details.lost_or_duplicate_trials``: missing or extra finished trials, repeated trial numbers
and trials left RUNNING or WAITING, over all runs; must be 0.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from statistics import median

import yaml

ROOT = Path(__file__).resolve().parents[1]

from devtools.airflow_stack import project_env  # noqa: E402
from devtools.celery_stack import CeleryStack, redis_database  # noqa: E402
from devtools.throwaway_pg import throwaway_database  # noqa: E402

NAME = "celery_2_workers_speedup"
# Each run also spends ~1 min on serial steps and dispatch that a second worker cannot share: a
# budget whose search dominates the run (RETUNE_BENCH_CELERY_TRIALS) is what the arms compare.
TRIALS = int(os.environ.get("RETUNE_BENCH_CELERY_TRIALS", "96"))
ORDER = (1, 2, 2, 1)
CONF = {"data": "sample:sp500", "as_of": "2018-12-31", "n_trials": TRIALS, "timeout_minutes": 30,
        "workers": 2, "mode": "random"}  # fmt: skip


def _config(home: Path, name: str) -> str:
    """The daily default with the architecture pinned and no early stopping, so every trial costs
    about the same (~5 s on this machine): the arms differ only in how many trials run at once."""
    daily = yaml.safe_load((ROOT / "pipelines" / "defaults" / "daily.yaml").read_text())
    space = {
        k: v for k, v in daily["search_space"].items() if k not in ("hidden_size", "num_layers", "seq_len")
    }
    config = {**daily, "search_space": space, "hidden_size": 16, "num_layers": 1, "seq_len": 20,
              "seeds_per_trial": 2, "epochs": 15, "inner_val_fraction": 0, "pruner": "none",
              "race_seeds": 0, "model_key": name, "promotion_policy": "auto"}  # fmt: skip
    (home / "configs" / f"{name}.yaml").write_text(yaml.safe_dump(config))
    return name


def _check(store: str, run_id: str) -> tuple[int, float]:
    """(lost or duplicate trials, search span in seconds) of a run's study."""
    import optuna
    from optuna.trial import TrialState

    from pipelines.context import safe_run_id
    from pipelines.search.study import fresh_trials, study_name

    study = optuna.load_study(study_name=study_name(safe_run_id("daily", run_id)), storage=store)
    trials = fresh_trials(study)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    left = [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    numbers = [t.number for t in study.trials]
    problems = abs(len(finished) - TRIALS) + len(left) + len(numbers) - len(set(numbers))
    span = max(t.datetime_complete for t in finished) - min(t.datetime_start for t in finished)  # type: ignore[type-var,operator]
    return problems, span.total_seconds()


def run() -> dict:
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    rows = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        throwaway_database("retune_bench") as store,
        throwaway_database("airflow_meta") as meta,
        redis_database() as redis_db,
    ):
        home = Path(tmp) / "var"
        (home / "configs").mkdir(parents=True)
        env = project_env(RETUNE_HOME=str(home), RETUNE_DB_URL=store, RETUNE_HOURLY_SCHEDULE="none")
        with CeleryStack(env, Path(tmp) / "airflow", meta, redis_db) as stack:
            stack.wait_for_dag("retune_daily")
            for i, workers in enumerate(ORDER):
                stack.stop_workers()
                stack.start_workers(*(f"w{n + 1}" for n in range(workers)))
                name = _config(home, f"bench_celery_{i}_{workers}w")
                started = time.perf_counter()
                run_id = stack.trigger("retune_daily", {**CONF, "config": name}, name)
                finished = stack.wait_for_run("retune_daily", run_id, poll=0.5)
                wall = time.perf_counter() - started
                if finished["state"] != "success":
                    raise RuntimeError(f"DAG run {run_id} {finished['state']}:\n{stack.logs()}")
                problems, span = _check(store, run_id)
                hosts = stack.hostnames("retune_daily", run_id, "search_worker")
                rows.append({"celery_workers": workers, "wall_s": round(wall, 1),
                             "trials_per_min": round(TRIALS / wall * 60, 2), "search_span_s": round(span, 1),
                             "search_trials_per_min": round(TRIALS / span * 60, 2),
                             "search_workers_on": sorted(hosts), "problems": problems,
                             "loadavg_1min_after": os.getloadavg()[0]})  # fmt: skip
                print(f"   {workers} Celery worker(s): {rows[-1]['trials_per_min']} trials/min "
                      f"({wall:.0f} s, search {span:.0f} s)", flush=True)  # fmt: skip

    def arm(workers: int, key: str) -> float:
        return median(r[key] for r in rows if r["celery_workers"] == workers)

    return {
        "value": round(arm(2, "trials_per_min") / arm(1, "trials_per_min"), 3),
        "unit": "x trials/min of a retune_daily run, 2 Celery workers vs 1 (trigger to success)",
        "goal": ">= 1.7",
        "details": {
            "lost_or_duplicate_trials": sum(r["problems"] for r in rows),
            "search_speedup": round(arm(2, "search_trials_per_min") / arm(1, "search_trials_per_min"), 3),
            "wall_s_median": {"1_worker": arm(1, "wall_s"), "2_workers": arm(2, "wall_s")},
            "trials_per_run": TRIALS,
            "conf": CONF,
            "order": list(ORDER),
            "runs": rows,
            "config": "daily default, LSTM pinned to 16 units x 1 layer x 20 bars, 2 seeds, 15 epochs "
            "without early stopping, no pruner, no race; S&P 500 bars to 2018-12-31",
            "stack": "api-server, retune_airflow.scheduler, dag-processor; Celery workers "
            "(python -m retune_airflow.celery_worker, concurrency 1) on Redis; PostgreSQL everywhere",
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": Path("/proc/loadavg").read_text().split()[:3],
        },
    }
