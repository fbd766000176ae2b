"""The bar calendar of a run: a config's calendar settings, with what they leave open (frequency,
session) inferred from the bars' timestamps, and the checks that the bars fit it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipelines.calendar import (
    NS_PER_MINUTE,
    SESSIONS,
    STEP_JITTER,
    BarCalendar,
    BarFrequency,
    CalendarError,
    Session,
)

if TYPE_CHECKING:  # numpy and pandas load when bars are looked at: config parsing stays light
    import numpy as np


def _timestamps_ns(timestamps: Any) -> np.ndarray:
    import numpy as np
    import pandas as pd

    index = pd.DatetimeIndex(pd.to_datetime(timestamps, utc=True)).tz_convert(None)
    return np.unique(index.as_unit("ns").asi8)


def infer_frequency(timestamps: Any, tolerance: float = 0.01) -> BarFrequency:
    """The bar frequency of these timestamps: the most common step between bars, checked.

    Every step must be (within 5%) a whole number of bars: longer ones are closures (nights,
    weekends, holidays) or missing bars. More than ``tolerance`` of the steps off that grid —
    bars at irregular times — is an error that shows an example, not a guess.
    """
    import numpy as np

    ns = _timestamps_ns(timestamps)
    if len(ns) < 3:
        raise CalendarError(f"{len(ns)} bars: too few to tell the bar frequency; set bar_frequency")
    steps = np.diff(ns).astype(np.float64) / NS_PER_MINUTE
    values, counts = np.unique(steps, return_counts=True)
    mode = float(values[np.argmax(counts)])
    if 27 * 1440 <= np.median(steps) <= 32 * 1440:  # months are 28 to 31 days long
        frequency, ratio = BarFrequency(1, "mo"), steps / BarFrequency(1, "mo").minutes
        off = (np.abs(ratio - np.round(ratio)) > 0.1) | (np.round(ratio) < 1)
    else:
        try:
            frequency = BarFrequency.parse(_as_frequency_text(mode))
        except CalendarError:
            raise CalendarError(
                f"the most common step between bars is {_minutes_text(mode)}, not a bar frequency "
                "(1min ... 1h ... 1d, 1w, 1mo); set bar_frequency or resample the bars"
            ) from None
        ratio = steps / frequency.minutes
        off = (np.abs(ratio - np.round(ratio)) > STEP_JITTER) | (np.round(ratio) < 1)
    share = float(off.mean())
    if share > tolerance:
        first = int(np.argmax(off))
        raise CalendarError(
            f"irregular bars: {share:.1%} of the {len(steps):,} steps between bars are not a whole "
            f"number of {frequency} bars (the most common step), e.g. {_minutes_text(steps[first])} "
            f"after bar {first + 1}; more than bar_tolerance={tolerance:g}: set bar_frequency or "
            "resample the bars"
        )
    return frequency


def infer_session(timestamps: Any, frequency: BarFrequency) -> Session:
    """The session these bars trade in (see the module docstring for the rules)."""
    import numpy as np
    import pandas as pd

    ns = _timestamps_ns(timestamps)
    saturdays = float(np.mean(pd.DatetimeIndex(ns).day_of_week == 5)) if len(ns) else 0.0
    if saturdays > 0.05:  # FX opens on Sunday evening (UTC) but never trades on a Saturday
        return SESSIONS["24x7"]
    if not frequency.intraday:
        return SESSIONS["xnys"]
    # runs of bars one bar apart: a trading day (exchange) or a whole week (24x5)
    steps = np.diff(ns) / NS_PER_MINUTE
    breaks = np.flatnonzero(steps > 1.5 * frequency.minutes)
    runs = np.diff(np.concatenate([[-1], breaks, [len(ns) - 1]]))
    typical_hours = float(np.median(runs)) * frequency.minutes / 60
    if typical_hours >= 20:
        return SESSIONS["24x5"]
    xnys = SESSIONS["xnys"]
    if abs(typical_hours - xnys.minutes_per_day / 60) <= max(1.0, frequency.minutes / 60):
        return xnys
    raise CalendarError(
        f"intraday bars trade about {typical_hours:.1f} hours a day, which matches no known session "
        f"({', '.join(SESSIONS)}); set session, or bars_per_year for another exchange"
    )


def resolve_calendar(
    timestamps: Any = None,
    bar_frequency: str | None = None,
    session: str = "auto",
    bars_per_year: float | None = None,
    year_days: int | None = None,
    tolerance: float = 0.01,
) -> BarCalendar:
    """The calendar of a config (its explicit settings) completed from the bars' timestamps."""
    if bar_frequency is not None:
        frequency = BarFrequency.parse(bar_frequency)
        if timestamps is not None:
            _check_frequency(timestamps, frequency)
    elif timestamps is None:
        raise CalendarError("bar_frequency is not set and there are no bars to infer it from")
    else:
        frequency = infer_frequency(timestamps, tolerance)
    if session != "auto":
        chosen = SESSIONS[session]
    elif timestamps is None:
        raise CalendarError("session is auto and there are no bars to infer it from")
    else:
        chosen = infer_session(timestamps, frequency)
    return BarCalendar(frequency, chosen, year_days, bars_per_year)


def calendar_of(config: Any, timestamps: Any = None) -> BarCalendar:
    """The calendar of a ``PipelineConfig``: its settings, the rest inferred from ``timestamps``."""
    return resolve_calendar(
        timestamps,
        bar_frequency=config.bar_frequency,
        session=config.session,
        bars_per_year=config.bars_per_year,
        year_days=config.year_days,
        tolerance=config.bar_tolerance,
    )


def _check_frequency(timestamps: Any, frequency: BarFrequency) -> None:
    """A stated frequency must not be longer than the bars' most common step."""
    import numpy as np

    ns = _timestamps_ns(timestamps)
    if len(ns) < 3:
        return
    steps = np.diff(ns) / NS_PER_MINUTE
    values, counts = np.unique(steps, return_counts=True)
    mode = float(values[np.argmax(counts)])
    if mode < frequency.minutes * (1 - STEP_JITTER):
        raise CalendarError(
            f"bar_frequency {frequency} but most bars are {_minutes_text(mode)} apart: "
            f"set bar_frequency to match, or resample the bars to {frequency}"
        )


def _as_frequency_text(minutes: float) -> str:
    if minutes == 7 * 1440:
        return "1w"
    if minutes == 1440:
        return "1d"
    if minutes < 1440 and minutes == int(minutes):
        return f"{int(minutes)}min"
    return "0min"  # refused by BarFrequency.parse


def _minutes_text(minutes: float) -> str:
    if minutes >= 1440:
        return f"{minutes / 1440:g} days"
    if minutes >= 60:
        return f"{minutes / 60:g} hours"
    return f"{minutes:g} minutes"
