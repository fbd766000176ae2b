"""Typed hyperparameter declarations: what a family (or the trainer) accepts, its bounds and default.

One declaration per name is the single home of a hyperparameter's type and range: config
validation, search-space checks and error messages all read it, so a family added here needs no
edit anywhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class UnknownHyperparameterError(ValueError):
    """A name no declaration knows; the message lists the known ones."""


class IncompatibleHyperparametersError(ValueError):
    """Values each in range that together build no network (e.g. nhead not dividing d_model):
    a search prunes such a trial instead of stopping."""


@dataclass(frozen=True)
class HyperParam:
    """One hyperparameter: ``kind`` is int, float, str or bool; bounds are inclusive."""

    name: str
    kind: type
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    doc: str = ""

    def check(self, value: Any) -> Any:
        """``value`` coerced to ``kind``; a ValueError naming the parameter when it does not fit."""
        if value is None and self.default is None:
            return None
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{self.name}: expected true or false, got {value!r}")
            return value
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
                raise ValueError(f"{self.name}: expected an integer, got {value!r}")
            value = int(value)
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{self.name}: expected a number, got {value!r}")
            value = float(value)
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{self.name}: {value!r} is not one of {list(self.choices)}")
        if self.low is not None and value < self.low:
            raise ValueError(f"{self.name}: {value!r} is below {self.low:g}")
        if self.high is not None and value > self.high:
            raise ValueError(f"{self.name}: {value!r} is above {self.high:g}")
        return value


def check_values(
    owner: str, schema: Iterable[HyperParam], values: Mapping[str, Any], also_known: Iterable[str] = ()
) -> dict[str, Any]:
    """``values`` checked against ``schema``: unknown names are refused with the known ones listed
    (``also_known``: names valid elsewhere, e.g. the architecture's common fields)."""
    declared = {p.name: p for p in schema}
    unknown = [name for name in values if name not in declared]
    if unknown:
        known = sorted({*declared, *also_known})
        raise UnknownHyperparameterError(
            f"{', '.join(unknown)}: not a hyperparameter of {owner} (known: {', '.join(known)})"
        )
    return {name: declared[name].check(value) for name, value in values.items()}


def defaults(schema: Iterable[HyperParam]) -> dict[str, Any]:
    return {p.name: p.default for p in schema}
