"""Families by name: the built-in ones, or ``module.path:ClassName`` for a user's own family,
imported from the user's environment (config files only; trigger Params take built-in names)."""

from __future__ import annotations

import importlib
import re
from functools import cache

from models.families.base import ModelFamily
from models.families.builtin import LinearFamily, LSTMFamily, TransformerFamily
from models.families.mamba import MambaFamily
from models.families.moe import MoETransformerFamily

BUILTIN: dict[str, ModelFamily] = {
    f.name: f
    for f in (LSTMFamily(), TransformerFamily(), LinearFamily(), MoETransformerFamily(), MambaFamily())
}
IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class UnknownFamilyError(ValueError):
    """Neither a built-in family nor an importable ModelFamily."""


def get_family(name: str) -> ModelFamily:
    """The family called ``name``: built-in, or loaded from ``module.path:ClassName``."""
    if name in BUILTIN:
        return BUILTIN[name]
    if not IMPORT_PATH.match(name):
        raise UnknownFamilyError(
            f"unknown model family {name!r}; known: {', '.join(BUILTIN)} (or module.path:ClassName)"
        )
    return _imported(name)


@cache
def _imported(path: str) -> ModelFamily:
    module_name, class_name = path.split(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise UnknownFamilyError(f"model family {path!r} cannot be imported: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, ModelFamily)):
        raise UnknownFamilyError(f"model family {path!r} is not a models.families.ModelFamily subclass")
    family = cls()
    if family.name != path and family.name in BUILTIN:
        raise UnknownFamilyError(f"model family {path!r} reuses the built-in name {family.name!r}")
    return family
