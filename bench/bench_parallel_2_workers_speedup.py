"""Search throughput of 2 worker processes on one PostgreSQL study vs 1 worker process.

Both arms run the same small search (12 trials of the weekly config with the architecture
pinned, random sampler, no pruning: every trial trains every fold, so trials cost the same,
about 6 s here) through the production ``prepare_study`` + ``run_worker``
on a throwaway PostgreSQL database, each worker a fresh interpreter (as a mapped Airflow task
is). Arms alternate 1, 2, 2, 1 so a drift in machine load hits both. Value: median trials per
minute with 2 workers / median with 1, wall time from launching the workers until the last one
exits (interpreter start, imports and the first trial's warm-up included: the conservative
number). ``details.search_span_speedup`` uses the study's own timestamps instead (first trial
start to last trial end). ``details.lost_or_duplicate_trials``: over all runs, missing or extra
finished trials, repeated trial numbers and trials left RUNNING or WAITING; must be 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from statistics import median

import optuna
from optuna.trial import TrialState
from parallel_worker import config, settings

from devtools.throwaway_pg import throwaway_database
from pipelines.search.heartbeats import make_storage
from pipelines.search.seeding import prepare_study
from pipelines.search.study import study_name

NAME = "parallel_2_workers_speedup"
TRIALS = 12
ORDER = (1, 2, 2, 1)  # worker counts, interleaved
WORKER = Path(__file__).with_name("parallel_worker.py")


def problems(study: optuna.Study) -> int:
    """Missing or extra finished trials, repeated numbers, trials left RUNNING or WAITING."""
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    unfinished = [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    numbers = [t.number for t in study.trials]
    return abs(len(finished) - TRIALS) + (len(numbers) - len(set(numbers))) + len(unfinished)


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy (``/proc/stat``)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds of this process and its finished children (the workers)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def one_arm(url: str, workers: int, tag: str) -> dict:
    run_id = f"bench-{tag}-{workers}w"
    conf = config()
    prepare_study(run_id, conf, conf.search_space, settings(TRIALS), url)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    busy, own = busy_cpu_s(), own_cpu_s()
    launched = datetime.now()
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), url, run_id, str(TRIALS), str(w)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    errors = [p.communicate()[1] for p in procs]
    wall = time.perf_counter() - started
    # CPU the rest of the machine used meanwhile (PostgreSQL included): on 2 cores, another job
    # running beside the workers shows up here
    other_cpu = (busy_cpu_s() - busy) - (own_cpu_s() - own)
    failed = [e[-2000:] for p, e in zip(procs, errors, strict=True) if p.returncode != 0]
    if failed:
        raise RuntimeError(f"{workers}-worker arm failed:\n" + "\n".join(failed))
    study = optuna.load_study(study_name=study_name(run_id), storage=make_storage(url))
    trials = [t for t in study.trials if t.datetime_start and t.datetime_complete]
    first = min(t.datetime_start for t in trials)  # type: ignore[type-var]
    last = max(t.datetime_complete for t in trials)  # type: ignore[type-var]
    span = (last - first).total_seconds()
    durations = sorted((t.datetime_complete - t.datetime_start).total_seconds() for t in trials)  # type: ignore[operator]
    return {
        "workers": workers,
        "wall_s": round(wall, 2),
        "trials_per_min": round(TRIALS / wall * 60, 2),
        "search_span_s": round(span, 2),
        "span_trials_per_min": round(TRIALS / span * 60, 2),
        "startup_s": round((first - launched).total_seconds(), 2),  # launch to the first trial
        "trial_s_median": round(median(durations), 3),
        "trials_by_worker": {
            str(w): sum(1 for t in study.trials if t.user_attrs.get("worker") == w) for w in range(workers)
        },
        "problems": problems(study),
        "other_cpu_s": round(other_cpu, 1),
    }


def run() -> dict:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    rows = []
    with throwaway_database("retune_bench") as url:
        for i, workers in enumerate(ORDER):
            rows.append(one_arm(url, workers, f"{i}"))
            print(f"   {workers} worker(s): {rows[-1]['trials_per_min']} trials/min", flush=True)
    load_after = Path("/proc/loadavg").read_text().split()[:3]

    def arm(workers: int, key: str) -> float:
        return median(r[key] for r in rows if r["workers"] == workers)

    return {
        "value": round(arm(2, "trials_per_min") / arm(1, "trials_per_min"), 3),
        "unit": "x trials/min, 2 worker processes vs 1 on one PostgreSQL study (wall, startup included)",
        "goal": ">= 1.7",
        "details": {
            "lost_or_duplicate_trials": sum(r["problems"] for r in rows),
            "search_span_speedup": round(arm(2, "span_trials_per_min") / arm(1, "span_trials_per_min"), 3),
            "trials_per_min_1_worker_median": arm(1, "trials_per_min"),
            "trials_per_min_2_workers_median": arm(2, "trials_per_min"),
            "trials_per_run": TRIALS,
            "order": list(ORDER),
            "runs": rows,
            "search": "pipelines/defaults/weekly.yaml (3,000 bars, 4 folds of 252, 10 epochs), LSTM "
            "pinned to 32 units x 2 layers x 30 bars, random sampler, no pruner; 3,300-bar random walk; "
            "torch 1 thread per process",
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
    }
