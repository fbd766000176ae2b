"""One factory for the daily and weekly DAGs: the graph, schedule, Params and docs only."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Asset, chain, task, task_group

from retune_airflow.params import fleet_params, run_params
from retune_airflow.review import REVIEW_TASK, PromotionReviewOperator, publish_if_changed, record_review
from retune_airflow.tasks import plan_fleet, prepare_search, run_retune_step, search_worker

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

FLEET_DOC = """
* **Fleet:** one task group `model` per config in the `configs` Param (each config its own model
  key, e.g. one per instrument), mapped at run time; each key is a run of its own
  (`<run id>__<config>`), with its own report, review and production entry.
"""

FLAVOURS: dict[str, dict[str, Any]] = {
    "daily": {
        "schedule": "0 22 * * 1-5",
        "n_trials": 20,
        "timeout": 30,
        "model": "fine-tunes the deployed torch model on the latest window",
    },
    # intraday model keys (a config with bar_frequency 1h/15min, or bars it is inferred from):
    # five minutes past every hour, once the hour's bar has closed; each run reads the bars up
    # to its logical time, and the config's windows are converted to bars by the bar calendar
    "hourly": {
        "schedule": "5 * * * *",
        "n_trials": 10,
        "timeout": 20,
        "model": "fine-tunes the deployed torch model on the latest window of intraday bars",
    },
    "weekly": {
        "schedule": "0 6 * * 6",
        "n_trials": 100,
        "timeout": 240,
        "model": "retrains the torch model on the full window",
    },
}


def schedule_for(name: str, default: str | None = None) -> str | None:
    """``RETUNE_DAILY_SCHEDULE`` / ``RETUNE_WEEKLY_SCHEDULE`` / ``RETUNE_DAILY_FLEET_SCHEDULE`` ...
    (a cron or preset, or ``none`` for manual runs only), else ``default``."""
    value = os.environ.get(f"RETUNE_{name.upper()}_SCHEDULE")
    if value is None:
        return default
    return None if value.strip().lower() in ("", "none", "off") else value.strip()


def retry_delay_seconds(default: int = 60) -> int:
    """``RETUNE_RETRY_DELAY_SECONDS``: how long a failed task waits before its first retry (then
    doubling, up to 15 minutes). A search worker whose machine died resumes the study on retry."""
    raw = os.environ.get("RETUNE_RETRY_DELAY_SECONDS", "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"RETUNE_RETRY_DELAY_SECONDS={raw!r}: a whole number of seconds >= 1")
    return int(raw)


def _dag_settings(name: str) -> dict[str, Any]:
    """What the single-key and fleet DAGs of a flavour share."""
    return {
        "start_date": datetime(2024, 1, 1),
        "catchup": False,
        "max_active_runs": 1,
        "default_args": {
            "owner": "retune",
            "retries": 2,
            "retry_delay": timedelta(seconds=retry_delay_seconds()),
            "retry_exponential_backoff": 2.0,
            "max_retry_delay": timedelta(minutes=15),
        },
    }


def build_dag(name: str, schedule: str | None = None) -> DAG:
    flavour = FLAVOURS[name]
    with DAG(
        dag_id=f"retune_{name}",
        schedule=schedule if schedule is not None else schedule_for(name, flavour["schedule"]),
        tags=["retune", name],
        doc_md=DOC.format(name=name, model=flavour["model"]),
        params=run_params(flavour["n_trials"], flavour["timeout"]),
        **_dag_settings(name),
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
        review_tail(name, steps[-1])
    return dag


def build_fleet_dag(name: str) -> DAG:
    """Several model keys in one run (e.g. one per instrument): a task group per config named in
    the ``configs`` Param, mapped at run time, so the keys run in parallel on the executor.

    Airflow cannot map a task inside a mapped task group, so here a key's search is one task
    and its ``workers`` run as processes beside it (the single-key DAG maps them as tasks).
    """
    flavour = FLAVOURS[name]
    configs = [c.strip() for c in os.environ.get("RETUNE_FLEET_CONFIGS", "").split(",") if c.strip()]
    with DAG(
        dag_id=f"retune_{name}_fleet",
        schedule=schedule_for(f"{name}_fleet"),  # manual unless RETUNE_<NAME>_FLEET_SCHEDULE says
        tags=["retune", name, "fleet"],
        doc_md=DOC.format(name=f"{name} fleet", model=flavour["model"]) + FLEET_DOC,
        params={**run_params(flavour["n_trials"], flavour["timeout"]), **fleet_params(configs)},
        **_dag_settings(name),
    ) as dag:
        plan = PythonOperator(task_id="plan", python_callable=plan_fleet)

        @task_group(group_id="model")
        def model(config: str) -> None:
            steps = [
                PythonOperator(
                    task_id=step,
                    python_callable=run_retune_step,
                    op_kwargs={"step": step, "dag_name": name, "config": config},
                )
                for step in STEP_NAMES
            ]
            chain(*steps)
            review_tail(name, steps[-1], config)

        model.expand(config=plan.output)
    return dag


def review_tail(name: str, promote: Any, config: Any = None) -> None:
    """promote -> review (asks only under policy review) -> record_review; publish the Asset
    when the active config changed."""
    # retries: under load the scheduler has handled the executor's late "success" of a paused
    # execution after a reviewer's answer had re-queued the task, and failed it ("finished with
    # state success, but the task instance's state attribute is queued"). A retry is a new task
    # instance with a new request; it processes the answer the api-server recorded in our audit
    # (answer_lost_to_a_retry) and keeps the approvals already given (recorded_approvals). Every
    # answer can meet the race once.
    review = PromotionReviewOperator(
        task_id=REVIEW_TASK, dag_name=name, config=config, retries=3, retry_delay=timedelta(seconds=5)
    )
    recorded = PythonOperator(
        task_id="record_review",
        python_callable=record_review,
        op_kwargs={"dag_name": name, "config": config},
    )
    publish = PythonOperator(
        task_id="publish",
        python_callable=publish_if_changed,
        outlets=[PRODUCTION_CONFIG],
        trigger_rule="none_failed_min_one_success",
    )
    promote >> review >> recorded
    [promote, recorded] >> publish


def search_worker_placement() -> dict[str, Any]:
    """Where search workers run: ``RETUNE_SEARCH_POOL`` (an Airflow pool sized to what one study
    serves, bench ``storage_trials_per_second``) and ``RETUNE_SEARCH_QUEUE`` (a Celery queue served
    by the search machines); unset, Airflow's default pool and queue."""
    placement: dict[str, Any] = {}
    for key, variable in (("pool", "RETUNE_SEARCH_POOL"), ("queue", "RETUNE_SEARCH_QUEUE")):
        value = os.environ.get(variable, "").strip()
        if value:
            placement[key] = value
    return placement


def search_tasks(name: str) -> list[Any]:
    """prepare -> search_worker (mapped over the worker indices prepare returns) -> finalize.

    The mapping list comes from prepare's XCom, not the ``workers`` Param directly: prepare
    validates it and drops to one worker on an SQLite store. Each mapped worker is a process of
    its own; a killed one is retried by Airflow and its stale trial by any live worker.
    """
    prepare = PythonOperator(task_id="search", python_callable=prepare_search, op_kwargs={"dag_name": name})
    workers = (
        task(task_id="search_worker", **search_worker_placement())(search_worker)
        .partial(dag_name=name)
        .expand(worker=prepare.output)
    )
    finalize = PythonOperator(
        task_id="search_finalize",
        python_callable=run_retune_step,
        op_kwargs={"step": "search_finalize", "dag_name": name},
    )
    return [prepare, workers, finalize]
