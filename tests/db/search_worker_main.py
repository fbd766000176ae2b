"""One search worker process for the parallel-search tests (and what they share with it).

``python tests/db/search_worker_main.py OPTUNA_URL RUN_ID N_TRIALS WORKER`` runs
``run_worker`` on the prepared study of RUN_ID until it holds N_TRIALS finished trials. The
tests start several of these as real processes, kill them, and restart them.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipelines.config import PipelineConfig
from pipelines.config_files import parse_config  # noqa: E402
from pipelines.param_specs import Categorical, FloatRange, IntRange
from pipelines.search.study import SearchSettings  # noqa: E402
from pipelines.windowing import PreparedData  # noqa: E402

SPACE = {
    "lr": FloatRange(type="loguniform", low=1e-3, high=3e-2),
    "hidden_size": Categorical(type="categorical", choices=(4, 8)),
    "seq_len": IntRange(type="int", low=4, high=12, step=4),
    "entry_threshold": FloatRange(type="uniform", low=0.0, high=0.4),
}


def config() -> PipelineConfig:
    """One epoch, two folds: a trial takes about a second, every trial costs about the same."""
    return parse_config(
        {"epochs": 1, "batch_size": 64, "window_bars": 360, "n_folds": 2, "val_bars": 60}
        | {"strategy_grid_points": 3, "pruner": "none"}
    )


def settings(n_trials: int) -> SearchSettings:
    return SearchSettings(n_trials=n_trials, timeout_minutes=10, mode="random")


def data() -> PreparedData:
    """420 seeded random-walk bars: every process builds the same ones."""
    rng = np.random.default_rng(5)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0002, 0.01, 420)))
    open_ = np.r_[100.0, close[:-1]]
    bars = pd.DataFrame(
        {
            "timestamp": pd.bdate_range("2020-01-01", periods=420).astype("datetime64[ns]"),
            "open": open_,
            "high": np.maximum(open_, close) * 1.004,
            "low": np.minimum(open_, close) * 0.996,
            "close": close,
            "volume": rng.integers(1_000, 100_000, 420).astype(float),
        }
    )
    return PreparedData.from_bars(bars, window_bars=360)


def main(argv: list[str]) -> int:
    from pipelines.search.worker import run_worker

    url, run_id, n_trials, worker = argv[0], argv[1], int(argv[2]), int(argv[3])
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s worker {worker} %(name)s: %(message)s")
    run_worker(run_id, data(), config(), SPACE, settings(n_trials), url, worker=worker)
    import torch

    logging.getLogger("search_worker_main").info("torch threads: %d", torch.get_num_threads())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
