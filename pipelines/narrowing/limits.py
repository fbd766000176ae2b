"""How a target becomes a range: hard bounds, an absolute minimum width, the incumbent kept.

Every limit here is absolute (it depends on the parameter, never on the range it is applied to),
and narrowing only ever works inside the current range. Together that makes each application a
projection: applying the same target to its own result changes nothing.

Minimum width, per parameter:
- floats whose hard floor is positive (``lr``) and loguniform ranges: high / low >= ``MIN_RATIO``;
- other floats: high - low >= ``MIN_LINEAR_WIDTH[param]``, else 10% of the hard-bound span;
- ints: two values of the range's own step grid; categoricals: one choice.
A range already narrower than that is left as it is: narrowing never widens.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np
from annotated_types import Ge, Gt, Le, Lt

from pipelines.config import HyperParams
from pipelines.narrowing.base import Target
from pipelines.param_specs import Categorical, FloatRange, IntRange, ParamSpec, contains, is_number, same

MIN_RATIO = 3.0  # about half a decade: a scale parameter keeps room for the search to move
# entry_threshold is in units of the predictions' own spread (FeatureScaler.signal)
MIN_LINEAR_WIDTH = {"dropout": 0.1, "entry_threshold": 0.1}
LINEAR_FRACTION = 0.1  # other linear floats: this share of the hard-bound span
_TOL = 1e-9

Interval = tuple[float, float]


def hard_bounds(param: str, families: Collection[str] = ()) -> Interval:
    """The widest range a parameter may take, read from HyperParams' own field limits, or for a
    family's or the trainer's own hyperparameter from the declarations of ``families`` (those
    the search may choose; none: every built-in one), the tightest of them, so every family that
    declares it accepts the range: mamba's ``d_ff_ratio`` may be 0 (no feed-forward) in a mamba
    search, not where a Transformer (>= 0.5) may be chosen too."""
    low, high = -math.inf, math.inf
    field = HyperParams.model_fields.get(param)
    if field is None:
        return _declared_bounds(param, families)
    for meta in field.metadata if field else ():
        if isinstance(meta, Ge):
            low = float(meta.ge)  # type: ignore[arg-type]
        if isinstance(meta, Gt):  # open bound: stay strictly inside
            low = float(np.nextafter(float(meta.gt), math.inf))  # type: ignore[arg-type]
        if isinstance(meta, Le):
            high = float(meta.le)  # type: ignore[arg-type]
        if isinstance(meta, Lt):  # open bound: stay strictly inside
            high = float(np.nextafter(float(meta.lt), -math.inf))  # type: ignore[arg-type]
    return low, high


def _declared_bounds(param: str, families: Collection[str]) -> Interval:
    from models.families import BUILTIN, get_family
    from models.training_options import TRAINING_SCHEMA

    chosen = [get_family(name) for name in families] if families else list(BUILTIN.values())
    declared = [p for f in chosen for p in f.schema if p.name == param]
    declared += [p for p in TRAINING_SCHEMA if p.name == param]
    lows = [p.low for p in declared if p.low is not None]
    highs = [p.high for p in declared if p.high is not None]
    return (max(lows) if lows else -math.inf, min(highs) if highs else math.inf)


def uses_ratio(param: str, spec: FloatRange, families: Collection[str] = ()) -> bool:
    """Width of a scale parameter (positive floor, or loguniform) is measured as a ratio."""
    return spec.log or hard_bounds(param, families)[0] > 0


def min_width(param: str, spec: FloatRange, families: Collection[str] = ()) -> float:
    """The minimum width of a float range: in log units when ``uses_ratio``, else linear."""
    if uses_ratio(param, spec, families):
        return math.log(MIN_RATIO)
    if param in MIN_LINEAR_WIDTH:
        return MIN_LINEAR_WIDTH[param]
    low, high = hard_bounds(param, families)
    return LINEAR_FRACTION * (high - low) if math.isfinite(high - low) else 1.0


# --- the three kinds of target ----------------------------------------------------------------


def apply(
    param: str,
    spec: ParamSpec,
    target: Target,
    envelope: Interval,
    incumbent: Any,
    families: Collection[str] = (),
) -> ParamSpec:
    """``spec`` after ``target``; ``envelope`` bounds widening (hard bounds and narrowing targets);
    ``families``: those the search may choose (``hard_bounds``)."""
    if target.kind == "pin":
        return _pin(param, spec, target, incumbent, families)
    if target.kind == "widen":
        return _widen(param, spec, target, envelope)
    if isinstance(spec, Categorical):
        return _narrow_choices(param, spec, target, incumbent, families)
    interval = target_interval(param, target, families)
    if interval is None:
        return spec
    if isinstance(spec, IntRange):
        return _narrow_ints(spec, interval, incumbent)
    return _narrow_floats(param, spec, interval, incumbent, families)


def target_interval(param: str, target: Target, families: Collection[str] = ()) -> Interval | None:
    """A narrowing target as an interval within the hard bounds (None when it has no numbers)."""
    if target.choices is not None:
        numbers = [c for c in target.choices if is_number(c)]
        if not numbers:
            return None
        low, high = float(min(numbers)), float(max(numbers))
    else:
        low, high = target.low, target.high
    floor, ceiling = hard_bounds(param, families)
    return max(low, floor), min(high, ceiling)


def _pin(param: str, spec: ParamSpec, target: Target, incumbent: Any, families: Collection[str]) -> ParamSpec:
    floor, ceiling = hard_bounds(param, families)
    values = [v for v in target.choices or () if not is_number(v) or floor <= v <= ceiling]
    if not values:
        return spec
    if contains(spec, incumbent) and not any(same(v, incumbent) for v in values):
        values.append(incumbent)
    return Categorical(type="categorical", choices=tuple(values))


def _narrow_choices(
    param: str, spec: Categorical, target: Target, incumbent: Any, families: Collection[str]
) -> ParamSpec:
    keep: list[Any] = []
    if target.choices is not None:
        keep = [c for c in spec.choices if any(same(c, t) for t in target.choices)]
    interval = target_interval(param, target, families)
    numbers = [c for c in spec.choices if is_number(c)]
    if not keep and interval is not None and len(numbers) == len(spec.choices):
        low, high = interval
        keep = [c for c in numbers if low <= c <= high]
        if not keep:  # keep one choice: the one nearest the target
            keep = [min(numbers, key=lambda c: max(low - c, c - high))]
    if not keep:
        return spec
    if contains(spec, incumbent) and not any(same(c, incumbent) for c in keep):
        keep.append(incumbent)
    kept = [c for c in spec.choices if any(same(c, k) for k in keep)]  # the configured order
    return Categorical(type="categorical", choices=tuple(kept))


def _narrow_floats(
    param: str, spec: FloatRange, interval: Interval, incumbent: Any, families: Collection[str]
) -> ParamSpec:
    floor, ceiling = hard_bounds(param, families)
    a, b = max(spec.low, floor), min(spec.high, ceiling)  # the current range, within hard bounds
    lo, hi = interval
    if a >= b or (spec.low >= lo and spec.high <= hi):
        return spec
    low, high = max(a, lo), min(b, hi)
    if low > high:  # the target misses the range: start from the point nearest to it
        point = a if hi < a else b if lo > b else min(max((lo + hi) / 2, a), b)
        low = high = point
    low, high = _at_least_min_width(param, spec, (a, b), (low, high), families)
    if contains(spec, incumbent):
        low, high = min(low, float(incumbent)), max(high, float(incumbent))
    return FloatRange(type=spec.type, low=low, high=high)


def _at_least_min_width(
    param: str, spec: FloatRange, current: Interval, want: Interval, families: Collection[str]
) -> Interval:
    """``want`` grown to the minimum width around its middle, sliding to stay inside ``current``."""
    ratio = uses_ratio(param, spec, families)
    to, back = (math.log, math.exp) if ratio else (float, float)
    a, b = current
    width = min_width(param, spec, families)
    if to(b) - to(a) <= width * (1 + _TOL):
        return a, b
    low, high = want
    if to(high) - to(low) >= width * (1 - _TOL):
        return low, high
    mid = (to(low) + to(high)) / 2
    if mid - width / 2 <= to(a):
        return a, min(back(to(a) + width), b)
    if mid + width / 2 >= to(b):
        return max(back(to(b) - width), a), b
    return max(back(mid - width / 2), a), min(back(mid + width / 2), b)


def _narrow_ints(spec: IntRange, interval: Interval, incumbent: Any) -> ParamSpec:
    step, origin = spec.step, spec.low
    top = (spec.high - origin) // step  # grid points origin + k * step, k = 0..top
    lo, hi = interval
    if top < 1:
        return spec
    k_low = max(math.ceil((lo - origin) / step), 0) if math.isfinite(lo) else 0
    k_high = min(math.floor((hi - origin) / step), top) if math.isfinite(hi) else top
    if k_low <= 0 and k_high >= top:
        return spec
    if k_high - k_low < 1:  # fewer than two grid points left: the pair nearest the target
        a, b = float(origin), float(origin + top * step)
        low, high = max(a, lo), min(b, hi)
        centre = (low + high) / 2 if low <= high else (a if hi < a else b if lo > b else (lo + hi) / 2)
        centre = min(max(centre, a), b)
        k_low = min(max(math.floor((centre - origin) / step), 0), top - 1)
        k_high = k_low + 1
    low_v, high_v = origin + k_low * step, origin + k_high * step
    if contains(spec, incumbent):
        low_v, high_v = min(low_v, int(incumbent)), max(high_v, int(incumbent))
    return IntRange(type="int", low=low_v, high=high_v, step=step)


def _widen(param: str, spec: ParamSpec, target: Target, envelope: Interval) -> ParamSpec:
    if isinstance(spec, Categorical):
        return spec
    lo, hi = max(target.low, envelope[0]), min(target.high, envelope[1])
    if lo > hi:
        return spec
    low, high = min(spec.low, lo), max(spec.high, hi)
    if isinstance(spec, IntRange):  # grow by whole steps, never past the target
        low = spec.low - math.floor((spec.low - low) / spec.step) * spec.step
        high = spec.high + math.floor((high - spec.high) / spec.step) * spec.step
        if (low, high) == (spec.low, spec.high):
            return spec
        return IntRange(type="int", low=int(low), high=int(high), step=spec.step)
    if spec.log and low <= 0:
        low = spec.low
    if (low, high) == (spec.low, spec.high):
        return spec
    return FloatRange(type=spec.type, low=float(low), high=float(high))
