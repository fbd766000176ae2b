"""Trials per second one PostgreSQL study sustains through our worker loop, at 1, 4 and 16 workers.

Each worker is a process running the production loop (``pipelines.search.study.work_on_stage``:
the study's advisory lock, the stale-trial check, the budget count, ask, heartbeats, tell) on a
trivial objective (two parameters, no work), random sampler, until the study holds ``TRIALS``
finished trials. Workers start together once all of them have imported and loaded the study, so
interpreter start-up is not timed. Arms run 1, 4, 16, 16, 4, 1 on a throwaway database.
Value: the median trials per second at 16 workers. ``details`` say what limits it: the share of
wall time the lock was held (1.0 = every trial waits for the lock), the lock time per trial, the
machine's CPU (busy share of all cores, and PostgreSQL's part) and the throughput of the study's
first and last 25% of trials (a cost that grows with the study's size shows there).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from statistics import median

import optuna
from optuna.trial import TrialState

from devtools.throwaway_pg import throwaway_database
from pipelines.search.heartbeats import make_storage
from pipelines.search.seeding import PREPARED

NAME = "storage_trials_per_second"
TRIALS = 200
ORDER = (1, 4, 16, 16, 4, 1)
WORKER = Path(__file__).with_name("storage_worker.py")


def busy_cpu_s() -> float:
    """Busy CPU seconds of the whole machine so far (``/proc/stat``)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


class PostgresCpu:
    """CPU seconds PostgreSQL's processes spend while it runs, sampled every 0.2 s: a backend's
    time is read while it lives (a worker's connections end with the worker)."""

    def __init__(self) -> None:
        self.seen: dict[int, float] = {}
        self.start: dict[int, float] = self._sample()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _sample() -> dict[int, float]:
        tick, out = os.sysconf("SC_CLK_TCK"), {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            if "(postgres)" in text:
                rest = text.rpartition(")")[2].split()
                out[int(stat.parent.name)] = (int(rest[11]) + int(rest[12])) / tick
        return out

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.seen.update(self._sample())

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        self.seen.update(self._sample())
        return sum(cpu - self.start.get(pid, 0.0) for pid, cpu in self.seen.items())


def one_arm(url: str, workers: int, tag: str) -> dict:
    name = f"bench-storage-{tag}-{workers}w"
    study = optuna.create_study(study_name=name, storage=make_storage(url), direction="maximize")
    study.set_user_attr(PREPARED, True)
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), url, name, str(TRIALS), str(w)],
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    for p in procs:  # every worker has imported and loaded the study
        line = p.stdout.readline() if p.stdout else ""
        if line.strip() != "ready":
            raise RuntimeError(f"a storage worker did not start: {line}{p.communicate()[1][-3000:]}")
    load_before = os.getloadavg()[0]
    busy0, postgres = busy_cpu_s(), PostgresCpu()
    started = time.perf_counter()
    for p in procs:
        p.stdin.write("go\n")  # type: ignore[union-attr]
        p.stdin.flush()  # type: ignore[union-attr]
    outs = [p.communicate() for p in procs]
    wall = time.perf_counter() - started
    busy1, postgres_s = busy_cpu_s(), postgres.stop()
    failed = [err[-2000:] for p, (_, err) in zip(procs, outs, strict=True) if p.returncode != 0]
    if failed:
        raise RuntimeError(f"{workers}-worker arm failed:\n" + "\n".join(failed))
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]

    trials = optuna.load_study(study_name=name, storage=make_storage(url)).trials
    finished = sorted(
        (t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)),
        key=lambda t: t.datetime_complete,  # type: ignore[arg-type,return-value]
    )
    left = [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    quarter = len(finished) // 4

    def rate(part: list) -> float:
        span = (part[-1].datetime_complete - part[0].datetime_complete).total_seconds()
        return round((len(part) - 1) / span, 1) if span > 0 else float("nan")

    lock_held = sum(r["lock_held_s"] for r in reports)
    return {
        "workers": workers,
        "wall_s": round(wall, 2),
        "trials_per_s": round(TRIALS / wall, 1),
        "lock_held_share": round(lock_held / wall, 3),
        "lock_ms_per_trial": round(1000 * lock_held / TRIALS, 2),
        "cpu_busy_share": round((busy1 - busy0) / wall / (os.cpu_count() or 1), 3),
        "postgres_cpu_share": round(postgres_s / wall / (os.cpu_count() or 1), 3),
        "first_quarter_trials_per_s": rate(finished[:quarter]),
        "last_quarter_trials_per_s": rate(finished[-quarter:]),
        "problems": abs(len(finished) - TRIALS) + len(left),
        "loadavg_1min_before": round(load_before, 2),
    }


def run() -> dict:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    rows = []
    with throwaway_database("retune_bench") as url:
        for i, workers in enumerate(ORDER):
            rows.append(one_arm(url, workers, str(i)))
            print(f"   {workers:2d} worker(s): {rows[-1]['trials_per_s']} trials/s, lock held "
                  f"{rows[-1]['lock_held_share']:.0%} of the time", flush=True)  # fmt: skip
    load_after = Path("/proc/loadavg").read_text().split()[:3]

    def arm(workers: int, key: str) -> float:
        return round(median(r[key] for r in rows if r["workers"] == workers), 3)

    keys = ("trials_per_s", "lock_held_share", "lock_ms_per_trial", "cpu_busy_share", "postgres_cpu_share")
    return {
        "value": arm(16, "trials_per_s"),
        "unit": "finished trials/s on one PostgreSQL study, 16 worker processes, trivial objective",
        "goal": "a record (no goal): how many search workers one study serves",
        "details": {
            **{f"{w}_workers": {k: arm(w, k) for k in keys} for w in sorted(set(ORDER))},
            "trials_per_arm": TRIALS,
            "lost_or_duplicate_trials": sum(r["problems"] for r in rows),
            "order": list(ORDER),
            "runs": rows,
            "loop": "pipelines.search.study.work_on_stage (advisory lock, fail_stale_trials, budget "
            "count, ask, heartbeat, tell), RandomSampler, objective = 2 suggests",
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
    }
