"""``python -m retune_airflow.celery_worker``: Airflow's Celery worker with the task libraries preloaded.

Under CeleryExecutor a task is a fork of the worker's pool process, which is a fork of the worker:
importing torch, vectorbt, Optuna and our steps here once (as ``retune_airflow.scheduler`` does for
LocalExecutor) saves every task seconds of imports. Arguments are passed on to
``airflow celery worker``.
"""

from __future__ import annotations

import logging
import sys

from retune_airflow.scheduler import PRELOAD, preload


def main() -> None:
    seconds = preload()
    logging.getLogger(__name__).warning("preloaded %d task modules in %.1f s", len(PRELOAD), seconds)
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", "celery", "worker", *sys.argv[1:]]
    airflow_main()


if __name__ == "__main__":
    main()
