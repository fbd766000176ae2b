"""One worker process of the ``storage_trials_per_second`` benchmark.

``python bench/storage_worker.py OPTUNA_URL STUDY N_TRIALS WORKER`` loads the study, prints
``ready`` and waits for a line on stdin (so interpreter start-up is not timed), then runs the
production worker loop (``work_on_stage``: advisory lock, stale-trial check, budget count, heartbeats) with a
trivial objective until the study holds N_TRIALS finished trials. Prints one JSON line: its
trials and how long it held the study's lock.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna  # noqa: E402

from pipelines.search.heartbeats import make_storage  # noqa: E402
from pipelines.search.study_lock import StudyLock  # noqa: E402
from pipelines.search.worker import work_on_stage  # noqa: E402


def trivial(trial: optuna.Trial) -> float:
    """Two parameters, no work: every second spent is the storage's and the loop's."""
    return trial.suggest_float("x", -1.0, 1.0) ** 2 + trial.suggest_int("k", 0, 9)


def main(argv: list[str]) -> int:
    url, name, n_trials, worker = argv[0], argv[1], int(argv[2]), int(argv[3])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=name, storage=make_storage(url), sampler=optuna.samplers.RandomSampler(seed=worker)
    )
    lock = StudyLock(url, name)
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.monotonic()
    done = work_on_stage(study, trivial, "coarse", n_trials, started + 600, lock, started, 60, worker)
    print(json.dumps({"worker": worker, "done": done, "lock_held_s": round(lock.held_seconds, 3),
                      "loop_s": round(time.monotonic() - started, 3)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
