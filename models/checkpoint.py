"""Checkpoints as a ``state_dict`` file plus plain-JSON metadata; never a pickled object.

The sha256 of the weights file is recorded in the metadata and the registry, and checked
before ``torch.load(..., weights_only=True)``, so a tampered or swapped file is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.networks import ArchitectureSpec, build_network

WEIGHTS = "weights.pt"
META = "meta.json"


class CheckpointError(RuntimeError):
    """The checkpoint cannot be trusted or does not fit; the message says why."""


@dataclass(frozen=True)
class Checkpoint:
    network: nn.Module
    spec: ArchitectureSpec
    meta: dict[str, Any]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(directory: Path, network: nn.Module, spec: ArchitectureSpec, meta: dict[str, Any]) -> str:
    """Write weights and metadata into ``directory``; return the weights' sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS
    tmp = weights.with_suffix(".tmp")
    torch.save(network.state_dict(), tmp)
    os.replace(tmp, weights)
    sha = file_sha256(weights)
    payload = {**meta, "architecture": spec.to_dict(), "sha256": sha}
    (directory / META).write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    return sha


def load_checkpoint(
    directory: Path,
    expected_sha256: str | None = None,
    expected_fingerprint: str | Collection[str] | None = None,
) -> Checkpoint:
    """Load a checkpoint after checking its hash and feature fingerprint (one, or any of several
    this code can still serve)."""
    weights, meta_path = directory / WEIGHTS, directory / META
    if not weights.is_file() or not meta_path.is_file():
        raise CheckpointError(f"checkpoint {directory} is incomplete (need {WEIGHTS} and {META})")
    meta = json.loads(meta_path.read_text())
    actual = file_sha256(weights)
    for label, expected in (("metadata", meta.get("sha256")), ("registry", expected_sha256)):
        if expected is not None and actual != expected:
            raise CheckpointError(
                f"checkpoint {weights} sha256 {actual[:12]}… does not match the {label} "
                f"({str(expected)[:12]}…): refusing to load a modified file"
            )
    fingerprint = meta.get("feature_fingerprint")
    readable = {expected_fingerprint} if isinstance(expected_fingerprint, str) else expected_fingerprint
    if readable is not None and fingerprint not in readable:
        raise CheckpointError(
            f"checkpoint {directory} was trained on features {fingerprint}, "
            f"but this code reads {' or '.join(sorted(readable))}: retrain instead of loading it"
        )
    spec = ArchitectureSpec(**meta["architecture"])
    network = build_network(spec)
    network.load_state_dict(torch.load(weights, weights_only=True, map_location="cpu"))
    return Checkpoint(network=network, spec=spec, meta=meta)
