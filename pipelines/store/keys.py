"""Keys derived from content: one definition each, shared by every writer and lock."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def content_hash(params: dict[str, Any]) -> str:
    """The sha256 of params in canonical JSON: equal params, equal hash, on every machine."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


def advisory_key(name: str) -> int:
    """A PostgreSQL advisory-lock key (signed 64-bit) for a name (a model key, a study)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
