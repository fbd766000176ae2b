"""DAG files: parse cleanly, stay light at parse time, and mirror the pipeline's steps."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "vectorbt", "optuna", "pandas", "great_expectations")


def _airflow_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{tmp_path / 'airflow.db'}",
    )
    return env


def _run_probe(code: str, tmp_path: Path) -> dict:
    """Run ``code`` in a fresh interpreter (clean sys.modules, own Airflow config); last line is JSON."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=_airflow_env(tmp_path),
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("dag_file", ["retune_daily.py", "retune_weekly.py", "retune_hourly.py"])
def test_dag_file_parses_without_heavy_imports(dag_file, tmp_path):
    probe = f"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("dag_module", {str(ROOT / "dags" / dag_file)!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
dag = module.dag
print(json.dumps({{
    "heavy": [m for m in {HEAVY!r} if m in sys.modules],
    "dag_id": dag.dag_id,
    "tasks": [t.task_id for t in dag.topological_sort()],
    "max_active_runs": dag.max_active_runs,
    "tags": sorted(dag.tags),
    "doc": bool(dag.doc_md),
    "retries": dag.default_args["retries"],
    "params": sorted(dag.params.keys()),
    "mapped": sorted(t.task_id for t in dag.tasks if getattr(t, "is_mapped", False)),
    "schedule": getattr(dag.timetable, "expression", None),
    "worker_upstream": sorted(dag.get_task("search_worker").upstream_task_ids),
    "finalize_upstream": sorted(dag.get_task("search_finalize").upstream_task_ids),
}}))
"""
    info = _run_probe(probe, tmp_path)
    assert info["heavy"] == [], f"DAG parse imported heavy modules: {info['heavy']}"
    assert info["dag_id"] == "retune_" + dag_file.removeprefix("retune_").removesuffix(".py")
    from pipelines.steps import STEPS

    # the pipeline's steps in order (search as prepare, mapped workers, finalize), then the
    # review (human in the loop) and the Asset update
    search = ["search", "search_worker", "search_finalize"]
    steps = [t for step in STEPS for t in (search if step == "search" else [step])]
    assert info["tasks"] == [*steps, "review", "record_review", "publish"]
    assert info["mapped"] == ["search_worker"]
    assert info["worker_upstream"] == ["search"] and info["finalize_upstream"] == ["search_worker"]
    assert info["max_active_runs"] == 1
    # the hourly DAG runs 5 minutes past every hour, once the hour's bar has closed
    expected = {
        "retune_daily.py": "0 22 * * 1-5",
        "retune_weekly.py": "0 6 * * 6",
        "retune_hourly.py": "5 * * * *",
    }
    assert info["schedule"] == expected[dag_file]
    assert "retune" in info["tags"] and info["doc"] and info["retries"] >= 1
    assert {
        "n_trials",
        "timeout_minutes",
        "objective",
        "mode",
        "model_family",
        "data",
        "config",
        "review_timeout_minutes",
        "workers",
    } <= set(info["params"])


def test_dagbag_has_no_import_errors(tmp_path):
    probe = f"""
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={str(ROOT / "dags")!r})
print(json.dumps({{"errors": bag.import_errors, "dag_ids": sorted(bag.dag_ids)}}))
"""
    info = _run_probe(probe, tmp_path)
    assert info["errors"] == {}
    assert {"retune_daily", "retune_weekly", "retune_hourly"} <= set(info["dag_ids"])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n_trials", -5),
        ("n_trials", 10**9),
        ("objective", "sortino; rm -rf /"),
        ("data", "csv:../../etc/passwd"),
        ("data", "csv:/etc/passwd"),
        ("data", "table:bars; DROP TABLE retune_runs"),
        ("as_of", "yesterday"),
        ("as_of", "2024-03-01T14:00; rm -rf /"),
        ("as_of", "2024-3-1"),
        ("config", "../secrets"),
        ("config", "/etc/retune/prod.yaml"),
        ("config", "spx; rm -rf /"),
        ("review_timeout_minutes", 0),
        ("review_timeout_minutes", 10**7),
        ("workers", 0),
        ("workers", 17),
        ("workers", "2; rm -rf /"),
        ("workers", 1.5),
    ],
)
def test_trigger_params_reject_bad_values(name, value):
    from airflow.sdk.exceptions import ParamValidationError

    sys.path.insert(0, str(ROOT / "plugins"))
    from retune_airflow.params import run_params

    params = run_params(20, 30)
    with pytest.raises(ParamValidationError):
        params[name].resolve(value)
    # the defaults themselves are valid
    assert params["data"].resolve("csv:bars/spx.csv") == "csv:bars/spx.csv"
    assert params["workers"].resolve(16) == 16
    for as_of in ("2024-03-01", "2024-03-01T14:00", "2024-03-01T14:00:00+00:00", "2024-03-01T09:00:00-05:00"):
        assert params["as_of"].resolve(as_of) == as_of  # a date, or a time of day for intraday runs


def test_workers_param_matches_the_run_params():
    """The trigger form and the core agree on the bounds (1..16, default 1)."""
    from pipelines.config import ConfigError
    from pipelines.run_params import parse_params

    sys.path.insert(0, str(ROOT / "plugins"))
    from retune_airflow.params import run_params

    param = run_params(20, 30)["workers"]
    assert param.value == 1 and parse_params({}).workers == 1
    assert param.schema["minimum"] == 1 and param.schema["maximum"] == 16
    assert parse_params({"workers": 16}).workers == 16
    for bad in (0, 17):
        with pytest.raises(ConfigError, match="workers"):
            parse_params({"workers": bad})


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", ["pipelines", "models"])
def test_core_packages_never_import_airflow(package):
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in _imports(path) if n.split(".")[0] == "airflow")
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_models_do_not_import_pipelines():
    for path in (ROOT / "models").rglob("*.py"):
        assert not any(n.split(".")[0] in ("pipelines", "retune_airflow") for n in _imports(path)), path
