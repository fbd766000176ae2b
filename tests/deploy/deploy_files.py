"""Deployment files (docker-compose.yaml, Dockerfile, sql/bootstrap) read the way Docker reads them.

There is no Docker engine here, so the tests parse the files and check what the engine would do with
them: compose's variable interpolation is reimplemented for the forms the file uses, and the
Dockerfile is split into instructions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
CONSTRAINTS = ROOT / "constraints.txt"
PYPROJECT = ROOT / "pyproject.toml"

# Values a user would put in .env: distinct, so a test can tell which one landed where.
SECRETS = {
    "POSTGRES_PASSWORD": "pg-super-0a1b",
    "AIRFLOW_DB_PASSWORD": "af-db-2c3d",
    "RETUNE_DB_PASSWORD": "rt-db-4e5f",
    "AIRFLOW_FERNET_KEY": "ZmVybmV0LWtleS0zMi1ieXRlcy1sb25nLWZvci10ZXN0cw==",
    "AIRFLOW_JWT_SECRET": "jwt-6a7b",
    "AIRFLOW_API_SECRET_KEY": "api-8c9d",
    "_AIRFLOW_WWW_USER_PASSWORD": "ui-0e1f",
}

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alt}, $NAME, $$
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<bare>\w+))"
)


class InterpolationError(ValueError):
    """What `docker compose` reports for a required variable that is unset or empty."""


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Substitute variables in every string of a parsed compose file, as `docker compose` does."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        current = env.get(name)
        missing = current is None or (op is not None and op.startswith(":") and current == "")
        if op in ("-", ":-"):
            return arg if missing else str(current)
        if op in ("?", ":?"):
            if missing:
                raise InterpolationError(f"required variable {name} is missing a value: {arg}")
            return str(current)
        if op in ("+", ":+"):
            return "" if missing else arg
        return current or ""

    return _VARIABLE.sub(substitute, value)


def referenced_variables(value: Any) -> set[str]:
    """Names compose reads from the host environment anywhere in a parsed compose file."""
    if isinstance(value, dict):
        return set().union(*(referenced_variables(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(referenced_variables(item) for item in value))
    if not isinstance(value, str):
        return set()
    return {m["braced"] or m["bare"] for m in _VARIABLE.finditer(value) if not m["escaped"]}


def required_variables(text: str) -> set[str]:
    """Names the file marks required with ${NAME:?...} or ${NAME?...}."""
    return {m["braced"] for m in _VARIABLE.finditer(text) if m["op"] in ("?", ":?")}


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction is dropped by Docker too
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def pins(path: Path) -> dict[str, str]:
    """`name==version` lines of a constraints file, names normalized as pip does."""
    result = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            result[normalize(name)] = version.strip()
    return result


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).strip().lower()
