"""The fleet DAG: one task group per config, mapped over what `plan` returns."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import ParamValidationError
from retune_airflow.dag_factory import STEP_NAMES, build_fleet_dag
from retune_airflow.params import fleet_params


@pytest.fixture
def dag(monkeypatch):
    monkeypatch.setenv("RETUNE_FLEET_CONFIGS", "spx, ndx")
    monkeypatch.delenv("RETUNE_DAILY_FLEET_SCHEDULE", raising=False)
    return build_fleet_dag("daily")


def test_a_mapped_group_per_config_after_the_plan(dag):
    assert dag.dag_id == "retune_daily_fleet" and dag.schedule is None  # manual unless configured
    group = dag.task_group_dict["model"]
    assert type(group).__name__ == "MappedTaskGroup"
    assert [f"model.{s}" for s in STEP_NAMES] == [t for t in dag.task_ids if t.split(".")[-1] in STEP_NAMES]
    assert dag.get_task("model.validate").upstream_task_ids == {"plan"}
    assert {"model.review", "model.record_review", "model.publish"} <= set(dag.task_ids)
    assert dag.params["configs"] == ["spx", "ndx"]


@pytest.mark.parametrize(
    "configs", [["../etc/passwd"], ["a b"], ["x", "x"], "spx", [f"c{i}" for i in range(51)]]
)
def test_bad_config_lists_are_refused(configs):
    param = fleet_params([])["configs"]
    with pytest.raises(ParamValidationError):
        param.resolve(configs)
    assert param.resolve(["spx_daily", "ndx-daily"]) == ["spx_daily", "ndx-daily"]
