"""Small JSON artifacts passed between steps through the run folder (never DataFrames via XCom)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def dump_json(path: Path, data: Any) -> Path:
    write_atomic(path, json.dumps(_clean(data), indent=2, sort_keys=True, default=str))
    return path


def load_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: did the step that writes it run?")
    return json.loads(path.read_text())


def write_atomic(path: Path, text: str) -> bool:
    """Replace ``path`` with ``text``; return False when it already had that content."""
    if path.is_file() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():  # keep the previous file without ever leaving `path` missing
            prev = path.with_name(path.name + ".prev")
            prev_tmp = prev.with_name(f"{prev.name}.{os.getpid()}.tmp")  # one per writer
            prev_tmp.unlink(missing_ok=True)
            os.link(path, prev_tmp)
            os.replace(prev_tmp, prev)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
