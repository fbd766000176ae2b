"""The run manifest: what it takes to re-derive a run's winner, written with every search.

It records the data's content hash, the code version (package version, git commit when the code
runs from a checkout), the resolved config and narrowed space, every seed, the Python and library
versions, and the winning trial's params, value and per-bar fold returns (hashed). Promotion
copies it into the config version; ``retune reproduce`` runs the winner again from it.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from models.ensemble import member_seeds
from pipelines.context import RunContext
from pipelines.runfolder import NarrowingRecord, RunManifest, SearchRecord, SearchSeed, TrialRecord
from pipelines.search.worker import worker_seed
from pipelines.terms import TrialAttr

ROOT = Path(__file__).resolve().parents[2]
LIBRARIES = ("torch", "numpy", "pandas", "optuna", "vectorbt", "scipy", "pydantic", "sqlalchemy", "arch")
STEERING_ATTRS = (TrialAttr.TRAIN_FAMILY,)  # user attributes that change what a trial trains


def data_hash(bars: pd.DataFrame) -> str:
    """sha256 of the bars' content as canonical CSV (full float precision): independent of the
    file format and of how the source stored them."""
    text = bars.to_csv(index=False, float_format="%.17g", date_format="%Y-%m-%dT%H:%M:%S.%f")
    return hashlib.sha256(text.encode()).hexdigest()


def returns_hash(fold_returns: Any) -> str:
    """sha256 of a trial's per-bar fold returns, as Optuna stores them (rounded, JSON)."""
    return hashlib.sha256(json.dumps(fold_returns, sort_keys=True).encode()).hexdigest()


def code_version() -> dict[str, Any]:
    """The package version, and the git commit (and whether files differ from it) in a checkout."""
    try:
        version: str | None = metadata.version("retune")
    except metadata.PackageNotFoundError:
        version = None
    return {"package_version": version, **_git()}


def _git() -> dict[str, Any]:
    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10)
        out.check_returncode()
        return out.stdout.strip()

    try:
        return {
            "git_commit": git("rev-parse", "HEAD"),
            "git_dirty": bool(git("status", "--porcelain", "-uno")),
        }
    except (OSError, subprocess.SubprocessError):  # no git, or not a checkout (an installed image)
        return {"git_commit": None, "git_dirty": None}


def environment() -> dict[str, Any]:
    libraries: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            libraries[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            libraries[name] = None
    return {"python": sys.version.split()[0], "platform": platform.platform(), "libraries": libraries}


def winner_record(trial: optuna.trial.FrozenTrial) -> TrialRecord:
    return TrialRecord(
        number=trial.number,
        params=dict(trial.params),
        user_attrs={k: trial.user_attrs[k] for k in STEERING_ATTRS if k in trial.user_attrs},
        value=float(trial.value),  # type: ignore[arg-type]
        fold_returns_sha256=returns_hash(trial.user_attrs.get(TrialAttr.FOLD_RETURNS)),
    )


def build_manifest(
    ctx: RunContext, study: optuna.Study, search: SearchRecord, bars: pd.DataFrame
) -> RunManifest:
    """The manifest of a run whose search just finished."""
    winner = next(t for t in study.trials if t.number == search.best_trial)
    seed, config = ctx.folder.read(SearchSeed), ctx.config
    return RunManifest(
        run_id=ctx.run_id,
        model_key=ctx.model_key,
        dag=ctx.dag,
        as_of=ctx.as_of.isoformat(),
        data={
            "source": ctx.params.data,
            "until": ctx.data_until.isoformat(),
            "sha256": data_hash(bars),
            "n_bars": len(bars),
            "first_bar": str(bars["timestamp"].iloc[0]),
            "last_bar": str(bars["timestamp"].iloc[-1]),
        },
        code=code_version(),
        environment=environment(),
        params=ctx.params.model_dump(mode="json"),
        config=config.model_dump(mode="json"),
        search_space=ctx.folder.read(NarrowingRecord).after,
        incumbent=seed.incumbent,
        seeds={
            "config_seed": config.seed,
            "member_seeds": list(member_seeds(config.seed, config.seeds_per_trial)),
            "sampler_seeds": [worker_seed(config.seed, w) for w in range(seed.workers)],
            "race_seeds": config.race_seeds,
        },
        winner=winner_record(winner),
    )
