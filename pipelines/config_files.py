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
    families = _named_families(raw, space)
    family = families[0] if len(families) == 1 else " or ".join(families)
    try:  # the families' own hyperparameters and the names users give the common ones (d_model)
        aliases = _merged_aliases(families)
        extra_names = {name for f in families for name in family_schema(f)}
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
    if "model_family" not in hyper and "model_family" in space:  # searched: the fixed family
        # options are held by a searched family that takes them all
        hyper["model_family"] = _holder_of(families, {k for k in hyper if k not in HyperParams.model_fields})
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


def _named_families(raw: dict[str, Any], space: Any) -> list[str]:
    """The families a config may use: the fixed one, else the searched choices, else the default."""
    if "model_family" in raw:
        return [raw["model_family"]] if isinstance(raw["model_family"], str) else []
    searched = space.get("model_family") if isinstance(space, dict) else None
    choices = searched.get("choices") if isinstance(searched, dict) else None
    if isinstance(choices, list | tuple) and choices and all(isinstance(c, str) for c in choices):
        return list(choices)
    return [HyperParams.model_fields["model_family"].default]


def _holder_of(families: list[str], fixed: set[str]) -> str:
    """The first searched family that takes every fixed family option: the config's own family,
    which holds them; a trial of another family leaves out what it does not take."""
    for family in families:
        if fixed <= set(family_schema(family)):
            return family
    takers = {name: [f for f in families if name in family_schema(f)] for name in sorted(fixed)}
    raise ConfigError(
        "fixed options of different searched families ("
        + "; ".join(f"{name}: {' or '.join(fams)}" for name, fams in takers.items())
        + "): no one family takes them all; search them, or fix model_family"
    )


def _merged_aliases(families: list[str]) -> dict[str, str]:
    """Every family's aliases (d_model -> hidden_size); one name may not mean two things."""
    merged: dict[str, str] = {}
    for family in families:
        for alias, name in family_aliases(family).items():
            if merged.setdefault(alias, name) != name:
                raise ValueError(
                    f"{alias!r} means {merged[alias]!r} in one searched family and {name!r} in "
                    f"{family!r}: use the hyperparameter's own name"
                )
    return merged


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
