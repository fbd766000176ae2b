"""Shared pieces for end-to-end runs: an isolated RETUNE_HOME / AIRFLOW_HOME and bar files."""

from __future__ import annotations

import os

import pytest
import yaml
from e2e_support import GOOD_BARS, PLUMBING_BUDGET, ROOT, random_walk_bars


@pytest.fixture(scope="session")
def e2e_env(tmp_path_factory) -> dict[str, str]:
    """Environment for subprocesses: fresh stores, bar files under RETUNE_DATA_DIR."""
    base = tmp_path_factory.mktemp("e2e")
    data = base / "data"
    data.mkdir()
    good = random_walk_bars(GOOD_BARS)
    good.to_csv(data / "good.csv", index=False)
    bad = good.copy()
    bad.loc[300, "close"] = -1.0  # a negative close
    bad.loc[400, "timestamp"] = bad.loc[399, "timestamp"]  # a duplicated timestamp
    bad.to_csv(data / "bad.csv", index=False)
    env = dict(os.environ)
    env.update(
        RETUNE_HOME=str(base / "var"),
        RETUNE_DATA_DIR=str(data),
        NUMBA_CACHE_DIR=str(ROOT / "var" / "numba-cache"),
        AIRFLOW_HOME=str(base / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{base / 'airflow' / 'airflow.db'}",
        PYTHONWARNINGS="ignore",
    )
    # `airflow dags test` never times out a review: runs that are not about reviews promote on their own
    configs = base / "var" / "configs"
    configs.mkdir(parents=True)
    daily = yaml.safe_load((ROOT / "pipelines" / "defaults" / "daily.yaml").read_text())
    (configs / "auto.yaml").write_text(yaml.safe_dump(daily | PLUMBING_BUDGET | {"promotion_policy": "auto"}))
    env.pop("RETUNE_DB_URL", None)
    env.pop("RETUNE_OPTUNA_URL", None)
    return env
