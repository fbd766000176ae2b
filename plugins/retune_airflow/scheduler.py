"""``python -m retune_airflow.scheduler``: Airflow's scheduler with the task libraries preloaded.

Under LocalExecutor every task is a fork of an executor worker, and the workers are forks of
the scheduler: whatever the scheduler has imported, a task gets for free. Importing pandas,
torch, vectorbt, Optuna and Great Expectations (and our steps) here once saves every task their
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
# parsing never pays for them).
PRELOAD = (
    "numpy",
    "pandas",
    "scipy.stats",
    "torch",
    "vectorbt",
    "optuna",
    "great_expectations",
    "plotly.graph_objects",
    "pipelines.validation.suite",
    "pipelines.steps",
    "pipelines.search.study",
    "pipelines.trading.backtest",
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
    _compile_backtests()
    return time.perf_counter() - started


def _compile_backtests() -> None:
    """One tiny backtest, so vectorbt's numba functions are compiled (or loaded from
    NUMBA_CACHE_DIR) here once instead of in every search, finalize and evaluate task. Numba
    compiles on this thread only; torch is not touched, so no thread pool starts before a fork."""
    import numpy as np
    import pandas as pd

    from pipelines.trading.backtest import Costs, backtest_with_returns

    index = pd.date_range("2024-01-01", periods=40, freq="D")
    close = pd.Series(100 * np.exp(np.linspace(0, 0.1, 40)), index=index)
    positions = pd.DataFrame({0.0: np.tile([1, 1, 0, -1], 10)}, index=index)
    backtest_with_returns(close, positions, Costs())


def main() -> None:
    seconds = preload()
    logging.getLogger(__name__).warning("preloaded %d task modules in %.1f s", len(PRELOAD), seconds)
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", "scheduler", *sys.argv[1:]]
    airflow_main()


if __name__ == "__main__":
    main()
