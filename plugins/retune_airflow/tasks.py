"""Task callables: build the RunContext from Airflow's context and run one pipeline step.

Heavy imports happen here, inside the task, never at DAG parse time.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException


def data_date(context: dict[str, Any]) -> datetime | None:
    """The run's date: logical date when there is one (scheduled runs, backfills), else run_after."""
    logical = context.get("logical_date")
    if logical is not None:
        return logical
    dag_run = context.get("dag_run")
    return getattr(dag_run, "run_after", None)


def run_context(dag_name: str, context: dict[str, Any], config: str | None = None):
    """The RunContext of a task. In a fleet run (one task group per model key) ``config`` names
    the group's config, and the run id gets it as a suffix: each key is a run of its own."""
    from pipelines.context import RunContext

    params, raw_run_id = dict(context["params"]), context["run_id"]
    if config is not None:
        params["config"], raw_run_id = config, f"{raw_run_id}__{config}"
    params.pop("configs", None)
    if is_scheduled(context):  # not the form's sample default: the configured source, or skip
        params["data"] = scheduled_data_source(context, dag_name, params.get("config"))
    return RunContext.create(dag_name, raw_run_id, params, logical_date=data_date(context))


def is_scheduled(context: dict[str, Any]) -> bool:
    run_type = getattr(context.get("dag_run"), "run_type", None)
    return str(getattr(run_type, "value", run_type)) == "scheduled"


def data_env_var(context: dict[str, Any]) -> str:
    """``RETUNE_DAILY_DATA`` for retune_daily, ``RETUNE_DAILY_FLEET_DATA`` for its fleet DAG, ..."""
    dag_id = str(getattr(context.get("dag"), "dag_id", None) or context["dag_run"].dag_id)
    return f"RETUNE_{dag_id.removeprefix('retune_').upper()}_DATA"


def scheduled_data_source(context: dict[str, Any], dag_name: str, config: str | None) -> str:
    """Where a scheduled run reads its bars: ``RETUNE_<DAG>_DATA``, else the config's
    ``data_source``. With neither, the run skips with one line: nobody said which data to tune
    on, and the form's default (a bundled sample) is a demo, not a market."""
    from pipelines.config_files import default_config, load_config
    from pipelines.settings import load_settings

    variable = data_env_var(context)
    if os.environ.get(variable, "").strip():
        return os.environ[variable].strip()
    loaded = load_config(load_settings().config_file(config)) if config else default_config(dag_name)
    if loaded.data_source:
        return loaded.data_source
    raise AirflowSkipException(
        f"scheduled run skipped: no data source configured — set {variable} (e.g. csv:spx.csv) or "
        f"data_source in the config {config or f'(bundled {dag_name} default)'}; manual runs name it "
        "in the data Param"
    )


def check_trigger_conf(context: dict[str, Any]) -> None:
    """The first task checks the run's parameters again (a REST or CLI trigger gets the same
    message as the form): every bad field, its value and the rule, in words."""
    from retune_airflow.params import conf_errors

    dag_params = context["dag"].params
    spec = {name: dag_params.get_param(name) for name in dag_params}
    conf = dict(getattr(context.get("dag_run"), "conf", None) or {})
    values = {**{k: v for k, v in dict(context["params"]).items() if k in spec}, **conf}
    errors = conf_errors(values, spec)
    if errors:
        raise AirflowFailException("bad run parameters:\n" + "\n".join(f"  {e}" for e in errors))


def run_retune_step(
    step: str,
    dag_name: str,
    step_kwargs: dict[str, Any] | None = None,
    config: str | None = None,
    **context: Any,
) -> dict[str, Any]:
    from pipelines.config import ConfigError
    from pipelines.data.sources import DataSourceError
    from pipelines.steps import run_step
    from pipelines.validation.suite import BarValidationError
    from retune_airflow.connection import use_retune_connection

    use_retune_connection()
    if step == "validate" and config is None:  # the first task (a fleet checks in plan)
        check_trigger_conf(context)
    try:
        ctx = run_context(dag_name, context, config)
        return run_step(step, ctx, **(step_kwargs or {}))
    except (BarValidationError, ConfigError, DataSourceError) as exc:
        # Bad input does not get better on retry: fail now, with the message.
        raise AirflowFailException(str(exc)) from exc


def prepare_search(dag_name: str, **context: Any) -> list[int]:
    """The search's first task: prepare the study; its return value is what ``search_worker`` maps over."""
    return list(run_retune_step("search_prepare", dag_name, **context)["workers"])


def search_worker(worker: int, dag_name: str, **context: Any) -> dict[str, Any]:
    """One mapped search worker: trials on the shared study until it holds the run's budget."""
    return run_retune_step("search_worker", dag_name, step_kwargs={"worker": worker}, **context)


def plan_fleet(**context: Any) -> list[str]:
    """The fleet's configs, checked before any key starts: each loads, and no two share a model key."""
    from pipelines.config import ConfigError
    from pipelines.config_files import load_config
    from pipelines.context import with_model_key
    from pipelines.run_params import RunParams
    from pipelines.settings import load_settings

    check_trigger_conf(context)
    names = list(context["params"]["configs"])
    if not names:
        raise AirflowFailException("configs is empty: name at least one config under RETUNE_HOME/configs")
    settings, keys = load_settings(), dict[str, str]()
    data = context["params"].get("data") or RunParams.model_fields["data"].default
    for name in names:
        try:
            # the key each run will use: the config's own, else the data source's instrument
            source = scheduled_data_source(context, "daily", name) if is_scheduled(context) else data
            key = with_model_key(load_config(settings.config_file(name)), source).model_key
        except (ConfigError, ValueError) as exc:
            raise AirflowFailException(f"config {name!r}: {exc}") from exc
        if key in keys:
            raise AirflowFailException(f"configs {keys[key]!r} and {name!r} both tune model key {key!r}")
        keys[key] = name
    return names
