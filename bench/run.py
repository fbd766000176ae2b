"""Run the benchmarks in ``bench/bench_*.py`` and merge their results into ``bench/results.json``.

Usage: ``python bench/run.py [--only NAME]``. Each benchmark module exposes ``NAME: str`` and
``run() -> dict`` returning ``{"value", "unit", "goal", "details"}``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results.json"
REQUIRED = ("value", "unit", "goal", "details")


def discover() -> dict[str, ModuleType]:
    """Benchmark modules by their ``NAME``."""
    modules: dict[str, ModuleType] = {}
    for path in sorted(BENCH_DIR.glob("bench_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules[module.NAME] = module
    return modules


def load_results() -> dict[str, Any]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def save_results(results: dict[str, Any]) -> None:
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, RESULTS)


def run_one(module: ModuleType) -> dict[str, Any]:
    out = module.run()
    missing = [key for key in REQUIRED if key not in out]
    if missing:
        raise ValueError(f"{module.NAME}: run() result lacks {missing}")
    entry = {key: out[key] for key in REQUIRED}
    entry["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", metavar="NAME", help="run only the benchmark with this NAME")
    args = parser.parse_args(argv)

    # Before anything imports numba (vectorbt): keep the JIT cache inside bench/.
    os.environ.setdefault("NUMBA_CACHE_DIR", str(BENCH_DIR / ".cache" / "numba"))
    # the project (with devtools/, shared with the tests) and the benchmarks' shared fixtures
    for path in (ROOT, BENCH_DIR):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))

    modules = discover()
    if args.only is not None:
        if args.only not in modules:
            print(f"unknown benchmark {args.only!r}; known: {sorted(modules)}", file=sys.stderr)
            return 2
        modules = {args.only: modules[args.only]}

    failed: list[str] = []
    for name, module in modules.items():
        print(f"== {name}", flush=True)
        try:
            entry = run_one(module)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        results = load_results()
        results[name] = entry
        save_results(results)
        print(f"   {entry['value']:.4g} {entry['unit']} (goal {entry['goal']})", flush=True)

    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
