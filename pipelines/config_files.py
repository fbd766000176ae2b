"""Config files: the seed format users write (JSON or YAML) read into a ``PipelineConfig``.

Reading a config is where a run is built, so the names that live in other packages (the
narrowing rules) are checked here, above both: ``pipelines.config`` stays a leaf of plain models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pipelines.config import DEFAULTS_DIR, ConfigError, HyperParams, PipelineConfig
from pipelines.narrowing.rules import rules_by_name


def parse_config(raw: dict[str, Any]) -> PipelineConfig:
    """Build a PipelineConfig from the seed format (flat fixed params + ``search_space``)."""
    if not isinstance(raw, dict):
        raise ConfigError("config must be a mapping")
    raw = dict(raw)
    space = raw.pop("search_space", {}) or {}
    hyper_names = set(HyperParams.model_fields)
    hyper = {k: raw.pop(k) for k in list(raw) if k in hyper_names}
    both = sorted(set(hyper) & set(space))
    if both:
        raise ConfigError(f"{', '.join(both)}: both fixed and searched; keep one")
    try:
        config = PipelineConfig(hyperparams=HyperParams(**hyper), search_space=space, **raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    if config.narrowing_rules is not None:
        try:
            rules_by_name(config.narrowing_rules)
        except ValueError as exc:
            raise ConfigError(f"narrowing_rules: {exc}") from None
    return config


def load_config(path: str | Path) -> PipelineConfig:
    """Load a JSON or YAML config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text()
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}") from None
    return parse_config(raw or {})


def default_config(dag: str) -> PipelineConfig:
    """The bundled config for ``daily`` or ``weekly`` runs."""
    return load_config(DEFAULTS_DIR / f"{dag}.yaml")


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p not in ("hyperparams",))
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)
