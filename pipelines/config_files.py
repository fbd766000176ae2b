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

from pipelines.config import (
    DEFAULTS_DIR,
    ConfigError,
    HyperParams,
    PipelineConfig,
    family_aliases,
    family_schema,
)
from pipelines.narrowing.rules import rules_by_name


def parse_config(raw: dict[str, Any]) -> PipelineConfig:
    """Build a PipelineConfig from the seed format (flat fixed params + ``search_space``)."""
    if not isinstance(raw, dict):
        raise ConfigError("config must be a mapping")
    raw = dict(raw)
    space = raw.pop("search_space", {}) or {}
    family = raw.get("model_family", "lstm")
    try:  # the family's own hyperparameters and the names users give the common ones (d_model)
        aliases = family_aliases(family) if isinstance(family, str) else {}
        extra_names = set(family_schema(family)) if isinstance(family, str) else set()
    except ValueError as exc:
        raise ConfigError(f"model_family: {exc}") from None
    raw = {aliases.get(k, k): v for k, v in raw.items()}
    if isinstance(space, dict):
        space = {aliases.get(k, k): v for k, v in space.items()}
    hyper_names = set(HyperParams.model_fields) | extra_names
    hyper = {k: raw.pop(k) for k in list(raw) if k in hyper_names}
    both = sorted(set(hyper) & set(space))
    if both:
        raise ConfigError(f"{', '.join(both)}: both fixed and searched; keep one")
    try:
        config = PipelineConfig(hyperparams=HyperParams(**hyper), search_space=space, **raw)
    except ValidationError as exc:
        unknown = f"neither a setting nor a hyperparameter of model family {family!r} (hyperparameters: "
        raise ConfigError(_describe(exc, unknown + ", ".join(sorted(hyper_names)) + ")")) from None
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


def _describe(exc: ValidationError, unknown_key: str | None = None) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p not in ("hyperparams",))
        msg = err["msg"].removeprefix("Value error, ")
        if unknown_key and err["type"] == "extra_forbidden":
            msg = f"{msg}: {unknown_key}"
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)
