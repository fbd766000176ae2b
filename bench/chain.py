"""Drive the real chain from a benchmark: ``retune run`` and ``retune status --json`` as processes.

The decision-quality benchmarks judge what a user gets (the promotion decision, the DSR the gate
read, the production config a trading system loads), so they go through the CLI exactly as a
scheduled deployment does: one ``RETUNE_HOME`` per series (its own SQLite store, Optuna study
history, model registry and production file), the series as a ``csv:`` source under
``RETUNE_DATA_DIR``, the default daily config with ``promotion_policy: auto``, and the status
JSON read after every run. Nothing here imports the pipeline; the only shared state is the home.

A series is run ``runs`` times in its home, either on unchanged data (the rerun ratchet) or
with one bar appended to the file before each rerun and the as-of moved to it (a daily schedule).
Series run concurrently, ``RETUNE_BENCH_PROCS`` (default 2) retune processes at a time, each with
one thread per numeric library (the trainer already sets one torch thread).

Environment overrides, for a quick smoke run (defaults are the issues' sizes):
``RETUNE_BENCH_SERIES``, ``RETUNE_BENCH_RERUNS``, ``RETUNE_BENCH_TRIALS``, ``RETUNE_BENCH_PROCS``,
``RETUNE_BENCH_EXTRA_SERIES`` (planted bench), ``RETUNE_BENCH_KEEP=1`` keeps the homes (their
paths are printed) instead of deleting them. ``RETUNE_BENCH_CONFIG`` (a JSON object) overrides
keys of the daily config, for diagnostics only (e.g. ``{"dsr_threshold": 0}`` to force winners
through as issue 14 did); the benchmarks record it in their details.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
RETUNE = ROOT / ".venv" / "bin" / "retune"
DAILY_CONFIG = ROOT / "pipelines" / "defaults" / "daily.yaml"
DEFAULT_TRIALS = 20  # the retune_daily DAG's n_trials default (and `retune run`'s)
RUN_TIMEOUT_S = 3600
# Variables that would point every series at one shared store or data set.
_SHARED_ENV = (
    "RETUNE_DB_URL",
    "RETUNE_OPTUNA_URL",
    "RETUNE_CONFIG",
    "RETUNE_FLEET_CONFIGS",
)
_ONE_THREAD = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def env_int(name: str, default: int) -> int:
    """An integer override from the environment (a smoke run shrinks the benchmark with these)."""
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


def log(message: str) -> None:
    print(f"   {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class SeriesSpec:
    """One series in its own home.

    ``bars`` set: a CSV series; run k sees ``bars[: first_bars + k]`` when ``append`` is set, else
    ``bars[:first_bars]`` every time, and the as-of is the last bar's date. ``bars`` unset: ``data``
    (e.g. ``sample:sp500``) with the fixed ``as_of``.
    """

    label: str
    model_key: str
    runs: int
    bars: pd.DataFrame | None = None
    first_bars: int | None = None
    append: bool = False
    data: str | None = None
    as_of: str | None = None
    n_trials: int = field(default_factory=lambda: env_int("RETUNE_BENCH_TRIALS", DEFAULT_TRIALS))
    truth: dict[str, Any] = field(default_factory=dict)

    def bars_for_run(self, k: int) -> pd.DataFrame:
        assert self.bars is not None
        first = self.first_bars if self.first_bars is not None else len(self.bars)
        n = first + k if self.append else first
        if n > len(self.bars):
            raise ValueError(f"{self.label}: run {k} needs {n} bars, the series has {len(self.bars)}")
        return self.bars.iloc[:n].reset_index(drop=True)


@dataclass
class SeriesResult:
    label: str
    model_key: str
    home: Path
    runs: list[dict[str, Any]]
    truth: dict[str, Any]

    @property
    def decisions(self) -> list[str | None]:
        return [r.get("decision") for r in self.runs]

    @property
    def ever_promoted(self) -> bool:
        return any(r.get("promoted") for r in self.runs)


def config_overrides() -> dict[str, Any]:
    """``RETUNE_BENCH_CONFIG``: diagnostic overrides of the daily config (none by default)."""
    raw = os.environ.get("RETUNE_BENCH_CONFIG")
    return dict(json.loads(raw)) if raw else {}


def write_config(home: Path, model_key: str) -> Path:
    """The default daily config with ``promotion_policy: auto`` and this series' model key."""
    raw = yaml.safe_load(DAILY_CONFIG.read_text())
    raw.update(model_key=model_key, promotion_policy="auto", **config_overrides())
    path = home / "bench_config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def retune_env(home: Path, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SHARED_ENV}
    env.update(RETUNE_HOME=str(home), RETUNE_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    env.update(dict.fromkeys(_ONE_THREAD, "1"))
    return env


def status(env: dict[str, str]) -> dict[str, Any]:
    """``retune status --json`` in this home."""
    out = subprocess.run(
        [str(RETUNE), "status", "--json", "--limit", "200"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(out.stdout)


def run_series(spec: SeriesSpec, root: Path) -> SeriesResult:
    """Every run of one series in a fresh home under ``root``; one record per run."""
    home = root / spec.label
    data_dir = home / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    config = write_config(home, spec.model_key)
    env = retune_env(home, data_dir)
    records: list[dict[str, Any]] = []
    for k in range(spec.runs):
        if spec.bars is not None:
            from pipelines.data.synthetic import write_csv

            bars = spec.bars_for_run(k)
            if k == 0 or spec.append:  # unchanged reruns read the very same file
                write_csv(bars, data_dir / "series.csv")
            data, as_of, n_bars = "csv:series.csv", f"{bars['timestamp'].iloc[-1]:%Y-%m-%d}", len(bars)
        else:
            assert spec.data is not None and spec.as_of is not None
            data, as_of, n_bars = spec.data, spec.as_of, None
        run_id = f"r{k:02d}"
        cmd = [str(RETUNE), "run", "--data", data, "--as-of", as_of, "--config", str(config)]
        cmd += ["--n-trials", str(spec.n_trials), "--run-id", run_id]
        started = time.perf_counter()
        log_path = home / "logs" / f"{run_id}.log"
        with log_path.open("w") as log_file:
            proc = subprocess.run(
                cmd,
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
                timeout=RUN_TIMEOUT_S,
            )
        wall = time.perf_counter() - started
        payload = status(env)
        record = run_record(home, payload, run_id, proc.returncode)
        record.update(as_of=as_of, n_bars=n_bars, wall_s=round(wall, 1))
        if proc.returncode != 0:
            record["log_tail"] = log_path.read_text().splitlines()[-15:]
        records.append(record)
        log(
            f"[{spec.label}] run {k + 1}/{spec.runs} as-of {as_of}: {record.get('decision')} "
            f"dsr={_fmt(record.get('dsr'))} best={_fmt(record.get('best_value'))} "
            f"N={record.get('n_backtests')}/{_fmt(record.get('n_effective'))} ({wall:.0f} s)"
        )
    return SeriesResult(spec.label, spec.model_key, home, records, spec.truth)


def run_record(home: Path, payload: dict[str, Any], run_id: str, returncode: int) -> dict[str, Any]:
    """What one run decided and why, from ``status --json`` (files of the run where it is silent).

    Reads the keys the gate issue adds (``dsr``, ``pbo``, ``n_backtests``, ``n_effective``,
    ``benchmark``, ``gate``) with ``.get``; before they exist, falls back to the run's
    ``search.json`` (statistics) and ``gate.json``.
    """
    runs = [r for r in payload.get("runs", []) if str(r.get("run_id", "")).split("__")[-1] == run_id]
    run = runs[0] if runs else {}
    run_dir = home / "runs" / str(run.get("run_id", f"daily__{run_id}"))
    stats = _load(run_dir / "search.json").get("statistics") or {}
    gate = run.get("gate") or _load(run_dir / "gate.json") or None
    dsr = run.get("dsr")
    if dsr is None:
        dsr = (stats.get("dsr") or {}).get("dsr")
    pbo = run.get("pbo")
    if isinstance(pbo, dict):
        pbo = pbo.get("pbo")
    if pbo is None:
        pbo = (stats.get("pbo") or {}).get("pbo")
    checks = (gate or {}).get("checks") or []
    decision = run.get("decision")
    return {
        "run_id": run.get("run_id"),
        "returncode": returncode,
        "state": run.get("state"),
        "decision": decision,
        "promoted": decision == "promoted",
        "failed_step": run.get("failed_step"),
        "error": run.get("error"),
        "best_value": run.get("best_value"),
        "n_trials": run.get("n_trials"),
        "dsr": dsr,
        "sr0": (stats.get("dsr") or {}).get("sr0"),  # the per-bar Sharpe the winner had to beat
        "pbo": pbo,
        "n_backtests": _first(run.get("n_backtests"), stats.get("n_backtests_ever")),
        "n_effective": _first(run.get("n_effective"), stats.get("n_effective")),
        "benchmark": run.get("benchmark"),
        "gate_passed": (gate or {}).get("passed"),
        "failed_checks": [c.get("name") for c in checks if c.get("passed") is False],
        "benchmark_checks": {
            c["name"]: {"value": c.get("value"), "threshold": c.get("threshold"), "passed": c.get("passed")}
            for c in checks
            if str(c.get("name", "")).startswith("beats_benchmark")
        },
    }


def refused_by_benchmark(record: dict[str, Any]) -> bool:
    """The run's gate failed one of the benchmark checks (walk-forward or holdout)."""
    return any(v.get("passed") is False for v in record.get("benchmark_checks", {}).values())


def run_all(specs: Iterable[SeriesSpec], name: str) -> tuple[list[SeriesResult], Path]:
    """Run every series, ``RETUNE_BENCH_PROCS`` at a time; returns results in ``specs`` order and
    the root of the homes (the caller reads them, then calls ``cleanup``)."""
    specs = list(specs)
    root = Path(tempfile.mkdtemp(prefix=f"retune-bench-{name}-"))
    procs = env_int("RETUNE_BENCH_PROCS", 2)
    log(f"{name}: {len(specs)} series x {[s.runs for s in specs]} runs, {procs} at a time, homes in {root}")
    # Threads are enough: each one waits on its own `retune` process, which does the work.
    with ThreadPoolExecutor(max_workers=procs) as pool:
        results = list(pool.map(lambda s: run_series(s, root), specs))
    failed = [(r.label, rec["run_id"]) for r in results for rec in r.runs if rec["returncode"] != 0]
    if failed:
        for r in results:
            for rec in r.runs:
                if rec["returncode"] != 0:
                    log(f"[{r.label}] {rec['run_id']} failed: " + "\n      ".join(rec.get("log_tail", [])))
        raise RuntimeError(f"{name}: retune run failed for {failed} (logs under {root})")
    return results, root


def cleanup(root: Path) -> None:
    if os.environ.get("RETUNE_BENCH_KEEP") == "1":
        log(f"kept the homes in {root}")
        return
    shutil.rmtree(root, ignore_errors=True)


def series_summary(result: SeriesResult) -> dict[str, Any]:
    """The per-series details every decision benchmark shows."""
    return {
        "model_key": result.model_key,
        "truth": result.truth,
        "decisions": result.decisions,
        "dsr": [_round(r.get("dsr"), 4) for r in result.runs],
        "best_value": [_round(r.get("best_value"), 4) for r in result.runs],
        "pbo": [_round(r.get("pbo"), 3) for r in result.runs],
        "n_backtests": [r.get("n_backtests") for r in result.runs],
        "n_effective": [_round(r.get("n_effective"), 1) for r in result.runs],
        "sr0": [_round(r.get("sr0"), 6) for r in result.runs],  # per bar: what the winner had to beat
        "failed_checks": [r.get("failed_checks") for r in result.runs],
        "wall_s": [r.get("wall_s") for r in result.runs],
    }


def _load(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _round(value: Any, digits: int) -> Any:
    return round(float(value), digits) if isinstance(value, int | float) else value


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else str(value)
