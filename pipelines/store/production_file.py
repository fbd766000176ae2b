"""``production.yaml``: the file the live trading system reads, always rebuilt from the store.

Written atomically (temp file, fsync, rename; the previous file kept as ``.prev``) so a
reader never sees half a config, and rebuilt whenever it disagrees with the store, which
repairs a crash between the database commit and the file write.
"""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import Any

import yaml

from pipelines.artifacts import write_atomic
from pipelines.store.repository import Repository
from pipelines.store.tables import ConfigVersion


def render(active: list[ConfigVersion], models: dict[tuple[str, int], dict[str, Any]]) -> str:
    """What the trading system needs, and only that: the same active versions give the same bytes
    (who approved and when live in the store and ``retune status``), so a rollback restores the
    file exactly."""
    doc: dict[str, Any] = {"models": {}}
    for cv in active:
        model = models.get((cv.model_key, cv.model_version or -1), {})
        doc["models"][cv.model_key] = {
            "config_version": cv.version,
            "params": cv.params,
            "content_hash": cv.content_hash,
            "model_version": cv.model_version,
            "checkpoint": model.get("checkpoint_path"),
            "checkpoint_sha256": model.get("sha256"),
            "source_run": cv.source_run,
        }
    header = "# Written by retune from the config store; edits are overwritten. See `retune status`.\n"
    return header + yaml.safe_dump(doc, sort_keys=True)


def sync_production_file(repo: Repository, path: Path) -> bool:
    """Make ``path`` match the store's active versions; return True if it was rewritten.

    Read and write happen under an exclusive lock on a sibling lock file, so two processes
    syncing at once cannot leave an older set of versions on disk after a newer one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _sync(repo, path)


def _sync(repo: Repository, path: Path) -> bool:
    active = repo.all_active_configs()
    models = {}
    for cv in active:
        if cv.model_version is not None:
            mv = repo.get_model_version(cv.model_key, cv.model_version)
            if mv is not None:
                models[(cv.model_key, cv.model_version)] = {
                    "checkpoint_path": mv.checkpoint_path,
                    "sha256": mv.sha256,
                }
    if not active and not path.exists():
        return False
    return write_atomic(path, render(active, models))


def read_production_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {"models": {}}
    return yaml.safe_load(path.read_text()) or {"models": {}}


def describe_production_file(
    repo: Repository, path: Path, model_key: str | None = None, why: str | None = None
) -> str:
    """One line for every place that names the production config: where it is and what it holds,
    or that it was not written and why (``why``: the latest decision, e.g. the failed gate checks
    with their numbers), so nobody goes looking for a file that is not there."""
    active = {cv.model_key: cv for cv in repo.all_active_configs()}
    if not path.is_file() or not active:
        reason = f"; last run {why}" if why else ""
        return f"not written ({path} does not exist): no config version has been promoted yet{reason}"
    if model_key is not None and model_key not in active:
        return f"{path} (no active version of {model_key}: its runs promoted nothing yet)"
    held = ", ".join(f"{key} v{cv.version}" for key, cv in sorted(active.items()))
    return f"{path} ({held} active)"
