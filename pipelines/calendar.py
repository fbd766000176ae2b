"""The bar calendar: how long a bar is, when its market trades, and so how many bars make a year.

One place defines it; every annualized number (Sharpe, Sortino, Calmar, alpha a year), every
window given in time (the narrowing rules' recent regime, a config's ``window``) and the
staleness check read it here. Nothing else assumes 252.

* ``bar_frequency``: ``1min`` … ``1h`` … ``1d``, ``1w``, ``1mo`` (intraday bars tile the day:
  ``1440 % minutes == 0``). Absent, it is inferred from the timestamps: the most common step
  between bars, with every other step a whole multiple of it (gaps: nights, weekends,
  holidays); more than ``bar_tolerance`` of the steps off that grid is an error, not a guess.
* ``session``: ``24x7`` (crypto: 365 days a year around the clock), ``24x5`` (FX: 52 weeks ×
  5 days, around the clock), ``xnys`` (NYSE regular hours 09:30–16:00 New York, 252 sessions
  a year). ``auto`` infers it: bars on Saturdays → 24x7; otherwise daily or longer bars →
  xnys (252 a year: daily FX wants ``session: 24x5``); intraday bars that run about 24 hours
  without a break → 24x5, about 6.5 hours a session → xnys.

Bars a year: intraday, bars per trading day × trading days (an exchange session's last partial
bar counts: 09:30–16:00 in 1h bars is 7 bars); ``1d``: trading days; ``1w``: 52; ``1mo``: 12.
``bars_per_year`` in a config overrides the count (an exchange not listed here).

vectorbt annualizes by calendar time (``year_freq / freq``), not by bars: ``vectorbt_freqs``
gives the pair whose ratio is exactly ``bars_per_year``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import time
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # numpy and pandas load when bars are looked at: config parsing stays light
    import numpy as np
    import pandas as pd

SessionName = Literal["auto", "24x7", "24x5", "xnys"]
DagName = Literal["daily", "weekly", "hourly"]  # the DAG flavours: their schedules follow the bars
DAG_NAMES: tuple[str, ...] = ("daily", "weekly", "hourly")
FREQUENCY_PATTERN = r"^[1-9][0-9]{0,3}(min|h|d|w|mo)$"
SPAN_PATTERN = r"^[1-9][0-9]{0,4}(min|h|d|w|mo|y)$"
_UNIT = re.compile(r"^([1-9][0-9]*)(min|h|d|w|mo|y)$")
_MINUTES = {"min": 1, "h": 60, "d": 1440, "w": 7 * 1440}
_NS_PER_MINUTE = 60 * 10**9
WEEKS_PER_YEAR, MONTHS_PER_YEAR = 52, 12
_DAYS_PER_YEAR = 365.25  # for spans in calendar time ("3mo", "90d") as a fraction of a year
_STEP_JITTER = 0.05  # a step within 5% of a whole number of bars is on the grid (DST, clock skew)


class CalendarError(ValueError):
    """The bars do not follow a calendar this module can describe; the message says why."""


@dataclass(frozen=True)
class Session:
    """When a market trades: trading days a year, and the hours of a trading day."""

    name: str
    days_per_year: int
    hours: tuple[time, time] | None  # open, close in ``timezone``; None: around the clock
    timezone: str
    weekends: bool  # trades on Saturdays and Sundays
    description: str

    @property
    def minutes_per_day(self) -> int:
        if self.hours is None:
            return 1440
        open_, close = self.hours
        return (close.hour * 60 + close.minute) - (open_.hour * 60 + open_.minute)

    @property
    def longest_closure(self) -> float:
        """Minutes of the longest regular pause (a weekend plus the night before it)."""
        if self.weekends:
            return 1440.0 - self.minutes_per_day
        return 2 * 1440.0 + (1440 - self.minutes_per_day)


SESSIONS: dict[str, Session] = {
    "24x7": Session("24x7", 365, None, "UTC", True, "every day around the clock (crypto)"),
    "24x5": Session("24x5", WEEKS_PER_YEAR * 5, None, "UTC", False, "around the clock, 5 days a week (FX)"),
    "xnys": Session(
        "xnys",
        252,
        (time(9, 30), time(16, 0)),
        "America/New_York",
        False,
        "NYSE regular hours 09:30-16:00 New York, 252 sessions a year (equities)",
    ),
}


@dataclass(frozen=True)
class BarFrequency:
    """A bar's length: ``count`` of ``unit`` (min, h, d, w, mo)."""

    count: int
    unit: str

    @classmethod
    def parse(cls, text: str) -> BarFrequency:
        match = _UNIT.match(str(text).strip())
        if not match or match.group(2) == "y":
            raise CalendarError(f"bar_frequency {text!r}: use e.g. 1min, 5min, 15min, 1h, 4h, 1d, 1w, 1mo")
        count, unit = int(match.group(1)), match.group(2)
        if unit in ("min", "h"):
            minutes = count * _MINUTES[unit]
            if minutes > 1440 or 1440 % minutes:
                raise CalendarError(
                    f"bar_frequency {text!r}: intraday bars must tile a day (1440 minutes % bar == 0)"
                )
            if minutes == 1440:
                return cls(1, "d")
            return cls(minutes // 60, "h") if minutes % 60 == 0 else cls(minutes, "min")
        if count != 1:
            raise CalendarError(f"bar_frequency {text!r}: bars of a day or longer are 1d, 1w or 1mo")
        return cls(1, unit)

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"

    @property
    def intraday(self) -> bool:
        return self.unit in ("min", "h")

    @property
    def minutes(self) -> float:
        """The bar's length in minutes (a month: a twelfth of 365.25 days)."""
        if self.unit == "mo":
            return _DAYS_PER_YEAR * 1440 / MONTHS_PER_YEAR
        return float(self.count * _MINUTES[self.unit])


@dataclass(frozen=True)
class BarCalendar:
    """A bar frequency on a session: bars a day, bars a year, time spans in bars."""

    frequency: BarFrequency
    session: Session
    days_per_year: int | None = None  # deprecated ``year_days``: trading days a year
    bars_per_year_override: float | None = None

    @property
    def trading_days(self) -> int:
        return self.days_per_year or self.session.days_per_year

    @property
    def bars_per_day(self) -> int | float:
        """Bars in one trading day (intraday bars only); an exchange's partial last bar counts."""
        if self.session.hours is None:
            return 1440 / self.frequency.minutes
        return math.ceil(self.session.minutes_per_day / self.frequency.minutes)

    @property
    def bars_per_year(self) -> float:
        if self.bars_per_year_override is not None:
            return float(self.bars_per_year_override)
        if self.frequency.intraday:
            return float(self.bars_per_day * self.trading_days)
        return float(
            {"d": self.trading_days, "w": WEEKS_PER_YEAR, "mo": MONTHS_PER_YEAR}[self.frequency.unit]
        )

    def annualize_sharpe(self, per_bar: float) -> float:
        """A per-bar Sharpe ratio, annualized (× sqrt(bars a year))."""
        return per_bar * math.sqrt(self.bars_per_year)

    def bars_in(self, span: str) -> int:
        """A time span (``90d``, ``3mo``, ``1y``, ``36h``) as a number of this calendar's bars:
        its share of a year × bars a year, at least 1."""
        return max(1, round(span_years(span) * self.bars_per_year))

    def vectorbt_freqs(self) -> tuple[pd.Timedelta, pd.Timedelta]:
        """(freq, year_freq) for vectorbt: the bar's length and ``bars_per_year`` of them, so
        vectorbt's annualization factor ``year_freq / freq`` is exactly ``bars_per_year``."""
        import pandas as pd

        bar = pd.Timedelta(minutes=self.frequency.minutes)
        return bar, bar * self.bars_per_year

    def max_staleness(self, bars: int) -> pd.Timedelta:
        """How old the last bar may be: ``bars`` bars of time plus the session's longest
        regular closure (a weekend), so Monday's run on Friday's bar is fresh."""
        import pandas as pd

        return pd.Timedelta(minutes=bars * self.frequency.minutes + self.session.longest_closure)

    def describe(self) -> str:
        per_year = self.bars_per_year
        return f"{self.frequency} bars, session {self.session.name}: {per_year:,.6g} bars a year"

    def to_dict(self) -> dict[str, Any]:
        return {
            "bar_frequency": str(self.frequency),
            "session": self.session.name,
            "bars_per_year": self.bars_per_year,
            "description": self.describe(),
        }


def span_years(span: str) -> float:
    """A span like ``3mo``, ``90d``, ``1y``, ``36h`` as a share of a year (12 months, 52 weeks,
    365.25 days)."""
    match = _UNIT.match(str(span).strip())
    if not match:
        raise CalendarError(f"time span {span!r}: use e.g. 36h, 90d, 6w, 3mo, 1y")
    count, unit = int(match.group(1)), match.group(2)
    if unit == "y":
        return float(count)
    if unit == "mo":
        return count / MONTHS_PER_YEAR
    if unit == "w":
        return count / WEEKS_PER_YEAR  # as weekly bars count them: 2w of hourly FX is 240 bars
    return count * _MINUTES[unit] / (_DAYS_PER_YEAR * 1440)


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
    steps = np.diff(ns).astype(np.float64) / _NS_PER_MINUTE
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
        off = (np.abs(ratio - np.round(ratio)) > _STEP_JITTER) | (np.round(ratio) < 1)
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
    steps = np.diff(ns) / _NS_PER_MINUTE
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
    steps = np.diff(ns) / _NS_PER_MINUTE
    values, counts = np.unique(steps, return_counts=True)
    mode = float(values[np.argmax(counts)])
    if mode < frequency.minutes * (1 - _STEP_JITTER):
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
