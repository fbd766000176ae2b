"""The search-space format users write: a float range (uniform or log-uniform), an int range on
a step grid, or a list of choices; and which values are points of a spec."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeGuard

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FrozenModel(BaseModel):
    """Immutable, and refuses unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class FloatRange(FrozenModel):
    type: Literal["uniform", "loguniform"]
    low: float
    high: float

    @model_validator(mode="after")
    def _check(self) -> FloatRange:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("loguniform needs low > 0")
        return self

    @property
    def log(self) -> bool:
        """Searched, refined and clustered on a log scale: the one place that decides it."""
        return self.type == "loguniform"


class IntRange(FrozenModel):
    type: Literal["int"]
    low: int
    high: int
    step: int = 1

    @model_validator(mode="after")
    def _check(self) -> IntRange:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high})")
        if self.step < 1:
            raise ValueError("step must be >= 1")
        return self


class Categorical(FrozenModel):
    type: Literal["categorical"]
    choices: tuple[Any, ...] = Field(min_length=1)


ParamSpec = Annotated[FloatRange | IntRange | Categorical, Field(discriminator="type")]


def is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def same(a: Any, b: Any) -> bool:
    """Equality that keeps True apart from 1 (a categorical of bools is not one of ints)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def contains(spec: ParamSpec, value: Any) -> bool:
    """Whether ``value`` is a point of ``spec`` (ints on the step grid, as the search sees it)."""
    if value is None:
        return False
    if isinstance(spec, Categorical):
        return any(same(c, value) for c in spec.choices)
    if not is_number(value) or not spec.low <= value <= spec.high:
        return False
    return not isinstance(spec, IntRange) or (value - spec.low) % spec.step == 0
