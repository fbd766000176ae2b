"""One factory for the daily and weekly DAGs: the graph, schedule, Params and docs only."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Asset, chain, task

from retune_airflow.params import run_params
from retune_airflow.review import REVIEW_TASK, PromotionReviewOperator, publish_if_changed, record_review
from retune_airflow.tasks import prepare_search, run_retune_step, search_worker

# Mirrors pipelines.steps.STEPS (a test keeps them equal) without importing it at parse time.
STEP_NAMES = ("validate", "features", "narrow", "search", "finetune", "evaluate", "report", "promote")
# The search step as tasks: prepare the study, N mapped worker processes, write the outputs.
SEARCH_TASKS = ("search", "search_worker", "search_finalize")

# Updated whenever the active config changes, so downstream DAGs (e.g. a deploy) can react.
PRODUCTION_CONFIG = Asset("retune_production_config", uri="file:///retune/config/production.yaml")

DOC = """
### Retune — {name} re-optimization

Validates the latest bars (Great Expectations), builds features with the live-inference code,
narrows the search space (DataDrivenOptimizer), runs an Optuna search scored by a walk-forward
vectorbt backtest, {model}, writes an HTML report and, when the gate passes, promotes the
chosen hyperparameters (policy auto) or asks for approval in the `review` task (policy review,
the default: "Required actions" in the UI, or `retune approve RUN`). Reject or no answer within
`review_timeout_minutes` keeps the current config.

* Report: `$RETUNE_HOME/reports/<run>/report.html`; production config: `$RETUNE_HOME/config/production.yaml`
* Trigger with parameters to change the budget, objective, search mode, model family or data.
* Bad data fails `validate` with each failed expectation named; nothing downstream runs.
"""

FLAVOURS: dict[str, dict[str, Any]] = {
    "daily": {
        "schedule": "0 22 * * 1-5",
        "n_trials": 20,
        "timeout": 30,
        "model": "fine-tunes the deployed torch model on the latest window",
    },
    "weekly": {
        "schedule": "0 6 * * 6",
        "n_trials": 100,
        "timeout": 240,
        "model": "retrains the torch model on the full window",
    },
}


def schedule_for(name: str) -> str | None:
    """``RETUNE_DAILY_SCHEDULE`` / ``RETUNE_WEEKLY_SCHEDULE`` (a cron or preset, or ``none`` for
    manual runs only), else the flavour's default."""
    value = os.environ.get(f"RETUNE_{name.upper()}_SCHEDULE")
    if value is None:
        return FLAVOURS[name]["schedule"]
    return None if value.strip().lower() in ("", "none", "off") else value.strip()


def build_dag(name: str, schedule: str | None = None) -> DAG:
    flavour = FLAVOURS[name]
    with DAG(
        dag_id=f"retune_{name}",
        schedule=schedule if schedule is not None else schedule_for(name),
        start_date=datetime(2024, 1, 1),
        catchup=False,
        max_active_runs=1,
        tags=["retune", name],
        doc_md=DOC.format(name=name, model=flavour["model"]),
        params=run_params(flavour["n_trials"], flavour["timeout"]),
        default_args={
            "owner": "retune",
            "retries": 2,
            "retry_delay": timedelta(minutes=1),
            "retry_exponential_backoff": 2.0,
            "max_retry_delay": timedelta(minutes=15),
        },
    ) as dag:
        steps: list[Any] = []
        for step in STEP_NAMES:
            if step == "search":
                steps.extend(search_tasks(name))
                continue
            steps.append(
                PythonOperator(
                    task_id=step, python_callable=run_retune_step, op_kwargs={"step": step, "dag_name": name}
                )
            )
        chain(*steps)
        promote = steps[-1]
        review = PromotionReviewOperator(task_id=REVIEW_TASK, dag_name=name, retries=0)
        recorded = PythonOperator(
            task_id="record_review", python_callable=record_review, op_kwargs={"dag_name": name}
        )
        publish = PythonOperator(
            task_id="publish",
            python_callable=publish_if_changed,
            outlets=[PRODUCTION_CONFIG],
            trigger_rule="none_failed_min_one_success",
        )
        promote >> review >> recorded
        [promote, recorded] >> publish
    return dag


def search_tasks(name: str) -> list[Any]:
    """prepare -> search_worker (mapped over the worker indices prepare returns) -> finalize.

    The mapping list comes from prepare's XCom, not the ``workers`` Param directly: prepare
    validates it and drops to one worker on an SQLite store. Each mapped worker is a process of
    its own; a killed one is retried by Airflow and its stale trial by any live worker.
    """
    prepare = PythonOperator(task_id="search", python_callable=prepare_search, op_kwargs={"dag_name": name})
    workers = (
        task(task_id="search_worker")(search_worker).partial(dag_name=name).expand(worker=prepare.output)
    )
    finalize = PythonOperator(
        task_id="search_finalize",
        python_callable=run_retune_step,
        op_kwargs={"step": "search_finalize", "dag_name": name},
    )
    return [prepare, workers, finalize]
