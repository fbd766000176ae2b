"""Shared pieces for end-to-end runs: an isolated RETUNE_HOME / AIRFLOW_HOME and bar files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
AS_OF = "2021-09-30"
# A small training budget on top of the daily defaults, for runs that test the chain's plumbing
# (two seeds still make an ensemble); `retune run` in test_cli.py runs the defaults as they are.
PLUMBING_BUDGET = {"seeds_per_trial": 2, "epochs": 3}


def random_walk_bars(n: int = 700, seed: int = 7, end: str = AS_OF) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.01, n)))
    open_ = close * np.exp(rng.normal(0, 0.003, n))
    spread = np.abs(rng.normal(0, 0.004, n))
    return pd.DataFrame(
        {
            "timestamp": pd.bdate_range(end=end, periods=n),
            "open": open_,
            "high": np.maximum(open_, close) * (1 + spread),
            "low": np.minimum(open_, close) * (1 - spread),
            "close": close,
            "volume": rng.integers(1_000, 10_000, n).astype(float),
        }
    )


@pytest.fixture(scope="session")
def e2e_env(tmp_path_factory) -> dict[str, str]:
    """Environment for subprocesses: fresh stores, bar files under RETUNE_DATA_DIR."""
    base = tmp_path_factory.mktemp("e2e")
    data = base / "data"
    data.mkdir()
    good = random_walk_bars()
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


def run(cmd: list[str], env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
