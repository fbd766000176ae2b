"""Model families behind one interface (``ModelFamily``) and a registry by name.

A family declares its hyperparameters with bounds and defaults, builds its network (or a seed
ensemble of it), names its backbone layers and shape parameters, and may add loss terms; the
pipeline asks the family instead of knowing names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.families.base import ALWAYS_SHAPE, COMMON_ARCHITECTURE, ModelFamily
from models.families.registry import BUILTIN, UnknownFamilyError, get_family
from models.families.schema import (
    HyperParam,
    IncompatibleHyperparametersError,
    UnknownHyperparameterError,
    check_values,
)
from models.networks import ArchitectureSpec


def architecture_spec(
    family: str, values: Mapping[str, Any], n_features: int, n_outputs: int = 1, members: int = 1
) -> ArchitectureSpec:
    """The spec of ``family`` for hyperparameter ``values`` (common fields and the family's own
    options; other names, e.g. the learning rate, are ignored), with presets applied."""
    fam = get_family(family)
    declared = {p.name for p in fam.schema}
    options = {k: v for k, v in values.items() if k in declared and v is not None}
    options = check_values(f"model family {fam.name!r}", fam.schema, options, COMMON_ARCHITECTURE)
    common = fam.configure({k: values[k] for k in COMMON_ARCHITECTURE}, options)
    return ArchitectureSpec(
        family=family,
        n_features=n_features,
        n_outputs=n_outputs,
        members=1 if fam.seed_free else members,
        options=options,
        **common,
    )


__all__ = [
    "ALWAYS_SHAPE",
    "BUILTIN",
    "COMMON_ARCHITECTURE",
    "HyperParam",
    "IncompatibleHyperparametersError",
    "ModelFamily",
    "UnknownFamilyError",
    "UnknownHyperparameterError",
    "architecture_spec",
    "check_values",
    "get_family",
]
