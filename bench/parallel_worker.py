"""One search worker process of the ``parallel_2_workers_speedup`` benchmark.

``python bench/parallel_worker.py OPTUNA_URL RUN_ID N_TRIALS WORKER`` works on the prepared
study of RUN_ID (``run_worker``) until it holds N_TRIALS finished trials.
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR.parent), str(BENCH_DIR)]

import yaml  # noqa: E402
from search_fixtures import random_walk  # noqa: E402

from pipelines.config import DEFAULTS_DIR, PipelineConfig  # noqa: E402
from pipelines.config_files import parse_config  # noqa: E402
from pipelines.search.study import SearchSettings  # noqa: E402
from pipelines.windowing import PreparedData  # noqa: E402

SEED = 0
# pinned so every trial costs the same whatever the sampler draws (lr, dropout and the strategy
# are still searched): a mid-size network of the weekly search, where parallel workers pay off
ARCHITECTURE = {"hidden_size": 32, "num_layers": 2, "seq_len": 30}


def config() -> PipelineConfig:
    """The bundled weekly config (3,000 bars, 4 folds of 252, 10 epochs), architecture pinned,
    no pruning: every trial trains every fold, so every trial costs about the same."""
    raw = yaml.safe_load((DEFAULTS_DIR / "weekly.yaml").read_text())
    raw["search_space"] = {k: v for k, v in raw["search_space"].items() if k not in ARCHITECTURE}
    return parse_config(raw | ARCHITECTURE | {"pruner": "none", "seed": SEED})


def settings(n_trials: int) -> SearchSettings:
    return SearchSettings(n_trials, 30, mode="random")


def data() -> PreparedData:
    return PreparedData.from_bars(random_walk(3300, SEED), config().window_bars)


def main(argv: list[str]) -> int:
    from pipelines.search.worker import run_worker

    url, run_id, n_trials, worker = argv[0], argv[1], int(argv[2]), int(argv[3])
    conf = config()
    run_worker(run_id, data(), conf, conf.search_space, settings(n_trials), url, worker=worker)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
