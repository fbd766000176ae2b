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
    import pandas as pd

SessionName = Literal["auto", "24x7", "24x5", "xnys"]
DagName = Literal["daily", "weekly", "hourly"]  # the DAG flavours: their schedules follow the bars
DAG_NAMES: tuple[str, ...] = ("daily", "weekly", "hourly")
FREQUENCY_PATTERN = r"^[1-9][0-9]{0,3}(min|h|d|w|mo)$"
SPAN_PATTERN = r"^[1-9][0-9]{0,4}(min|h|d|w|mo|y)$"
_UNIT = re.compile(r"^([1-9][0-9]*)(min|h|d|w|mo|y)$")
MINUTES = {"min": 1, "h": 60, "d": 1440, "w": 7 * 1440}
NS_PER_MINUTE = 60 * 10**9
WEEKS_PER_YEAR, MONTHS_PER_YEAR = 52, 12
_DAYS_PER_YEAR = 365.25  # for spans in calendar time ("3mo", "90d") as a fraction of a year
STEP_JITTER = 0.05  # a step within 5% of a whole number of bars is on the grid (DST, clock skew)


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
            minutes = count * MINUTES[unit]
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
        return float(self.count * MINUTES[self.unit])


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
    return count * MINUTES[unit] / (_DAYS_PER_YEAR * 1440)
