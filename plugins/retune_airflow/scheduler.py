"""``python -m retune_airflow.scheduler``: Airflow's scheduler with the task libraries preloaded.

Under LocalExecutor every task is a fork of an executor worker, and the workers are forks of
the scheduler: whatever the scheduler has imported, a task gets for free. Importing pandas,
torch, vectorbt and Optuna (and our steps) here once saves every task their
import time — seconds per task, most of what Airflow adds to a run (bench
``airflow_overhead_ratio``). Only imports happen: no torch threads, no CUDA, no connections,
so forking stays safe. Arguments are passed on to ``airflow scheduler``.
"""

from __future__ import annotations

import importlib
import logging
import sys
import time

# What the steps import when they run (imports inside the step functions stay lazy so that DAG
# parsing never pays for them). Not Great Expectations: a child forked after importing it hangs
# on exit until the supervisor kills it (5 s per task); only the validate task needs it anyway.
PRELOAD = (
    "numpy",
    "pandas",
    "scipy.stats",
    "torch",
    "vectorbt",
    "optuna",
    "plotly.graph_objects",
    "pipelines.steps",
    "pipelines.search.study",
    "pipelines.search.backtest",
    "pipelines.search.outputs",
    "pipelines.training.lifecycle",
    "pipelines.evaluation.service",
    "pipelines.reporting.report",
    "pipelines.promotion.service",
)


def preload() -> float:
    started = time.perf_counter()
    for name in PRELOAD:
        importlib.import_module(name)
    return time.perf_counter() - started


def main() -> None:
    seconds = preload()
    logging.getLogger(__name__).warning("preloaded %d task modules in %.1f s", len(PRELOAD), seconds)
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", "scheduler", *sys.argv[1:]]
    airflow_main()


if __name__ == "__main__":
    main()
