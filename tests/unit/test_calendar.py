"""The bar calendar: frequencies, sessions, bars a year, inference, and the settings that read it."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from pipelines.calendar import SESSIONS, BarCalendar, BarFrequency, CalendarError
from pipelines.calendar_inference import infer_frequency, infer_session, resolve_calendar
from pipelines.config import ConfigError
from pipelines.config_files import parse_config


def hourly_fx(n: int = 600) -> pd.DatetimeIndex:
    """Around the clock, Monday to Friday (UTC)."""
    hours = pd.date_range("2024-01-01", periods=n * 2, freq="h")
    return hours[hours.day_of_week < 5][:n]


def equity_15min(days: int = 30) -> pd.DatetimeIndex:
    """09:30-16:00 New York in 15-minute bars, as aware timestamps (DST included)."""
    sessions = pd.bdate_range("2024-03-01", periods=days)
    stamps = [
        pd.Timestamp(f"{d:%Y-%m-%d} 09:30", tz="America/New_York") + pd.Timedelta(minutes=15 * k)
        for d in sessions
        for k in range(26)
    ]
    return pd.DatetimeIndex(stamps)


@pytest.mark.parametrize(
    ("text", "canonical", "minutes"),
    [
        ("1min", "1min", 1),
        ("15min", "15min", 15),
        ("60min", "1h", 60),
        ("4h", "4h", 240),
        ("1440min", "1d", 1440),
    ],
)
def test_frequencies_parse_to_one_spelling(text, canonical, minutes):
    frequency = BarFrequency.parse(text)
    assert str(frequency) == canonical and frequency.minutes == minutes


@pytest.mark.parametrize("text", ["7min", "5h", "2d", "3w", "1y", "hourly", "0h"])
def test_frequencies_that_do_not_tile_a_day_or_year_are_refused(text):
    with pytest.raises(CalendarError, match="bar_frequency"):
        BarFrequency.parse(text)


@pytest.mark.parametrize(
    ("frequency", "session", "per_year"),
    [
        ("1d", "xnys", 252),  # daily equity
        ("1h", "24x5", 24 * 5 * 52),  # hourly FX: 6240
        ("15min", "xnys", 26 * 252),  # 15-minute equity session bars: 6552
        ("1d", "24x7", 365),  # daily crypto
        ("1h", "24x7", 24 * 365),
        ("1h", "xnys", 7 * 252),  # 09:30-16:00: the 15:30 half-hour bar counts
        ("1d", "24x5", 260),
        ("1w", "xnys", 52),
        ("1mo", "24x7", 12),
    ],
)
def test_bars_a_year_follow_the_frequency_and_the_session(frequency, session, per_year):
    calendar = BarCalendar(BarFrequency.parse(frequency), SESSIONS[session])
    assert calendar.bars_per_year == per_year
    freq, year_freq = calendar.vectorbt_freqs()
    assert year_freq / freq == pytest.approx(per_year, rel=1e-12)  # vectorbt's factor is the same


def test_time_spans_become_bars_of_the_calendar():
    daily = BarCalendar(BarFrequency.parse("1d"), SESSIONS["xnys"])
    fx = BarCalendar(BarFrequency.parse("1h"), SESSIONS["24x5"])
    assert daily.bars_in("3mo") == 63  # the narrowing rules' "recent quarter" of daily bars
    assert fx.bars_in("3mo") == 1560
    assert daily.bars_in("1y") == 252 and fx.bars_in("1y") == 6240
    with pytest.raises(CalendarError, match="time span"):
        daily.bars_in("soon")


@pytest.mark.parametrize(
    ("stamps", "frequency", "session"),
    [
        (pd.bdate_range("2020-01-01", periods=400), "1d", "xnys"),
        (pd.date_range("2020-01-01", periods=400, freq="D"), "1d", "24x7"),
        (hourly_fx(), "1h", "24x5"),
        (equity_15min(), "15min", "xnys"),
        (pd.date_range("2020-01-01", periods=400, freq="h"), "1h", "24x7"),
        (pd.date_range("2015-01-04", periods=200, freq="W-SUN"), "1w", "24x7"),
        (pd.date_range("2000-01-31", periods=120, freq="ME"), "1mo", "24x7"),
    ],
)
def test_frequency_and_session_are_inferred_from_timestamps(stamps, frequency, session):
    calendar = resolve_calendar(stamps)
    assert str(calendar.frequency) == frequency
    assert calendar.session.name in (session, "xnys" if frequency in ("1w", "1mo") else session)


def test_daily_bars_labelled_in_new_york_time_survive_daylight_saving():
    closes = pd.DatetimeIndex(
        [
            pd.Timestamp(f"{d:%Y-%m-%d} 16:00", tz="America/New_York")
            for d in pd.bdate_range("2023-01-02", periods=500)
        ]
    )
    assert str(infer_frequency(closes)) == "1d"  # 23- and 25-hour steps are still one bar


def test_irregular_bars_are_an_error_that_says_where():
    rng = np.random.default_rng(0)
    stamps = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.cumsum(rng.integers(1, 90, 500)), unit="min")
    with pytest.raises(CalendarError, match=r"irregular bars: .* bar_tolerance=0.01"):
        infer_frequency(stamps)


def test_a_few_odd_steps_are_within_the_tolerance():
    stamps = (
        pd.date_range("2024-01-01", periods=1000, freq="h")
        .delete([10])
        .insert(10, pd.Timestamp("2024-01-01 09:40"))
    )
    assert str(infer_frequency(stamps, tolerance=0.01)) == "1h"
    with pytest.raises(CalendarError, match="irregular"):
        infer_frequency(stamps, tolerance=0.0)


def test_a_stated_frequency_longer_than_the_bars_is_refused():
    with pytest.raises(CalendarError, match="bar_frequency 1d but most bars are 1 hours apart"):
        resolve_calendar(hourly_fx(), bar_frequency="1d")
    assert resolve_calendar(hourly_fx(), bar_frequency="1h", session="24x7").bars_per_year == 8760


def test_an_intraday_session_that_matches_nothing_known_asks_for_one():
    stamps = pd.DatetimeIndex(
        [
            pd.Timestamp(f"{d:%Y-%m-%d} 01:00") + pd.Timedelta(hours=h)
            for d in pd.bdate_range("2024-01-01", periods=30)
            for h in range(12)
        ]
    )
    with pytest.raises(CalendarError, match="about 12.0 hours a day, which matches no known session"):
        infer_session(stamps, BarFrequency.parse("1h"))


def test_config_calendar_settings_and_the_deprecated_year_days():
    config = parse_config({"bar_frequency": "60min", "session": "24x5"})
    assert config.bar_frequency == "1h" and config.annualization() == 6240
    assert (
        parse_config({"bars_per_year": 1000, "bar_frequency": "1h", "session": "xnys"}).annualization()
        == 1000
    )
    with pytest.warns(DeprecationWarning, match="year_days is deprecated"):
        legacy = parse_config({"year_days": 365, "bar_frequency": "1d", "session": "xnys"})
    assert legacy.annualization() == 365
    with pytest.raises(
        ConfigError, match=r"year_days: 6240 is not a number of trading days .*bars_per_year: 6240"
    ):
        parse_config({"year_days": 6240})
    with pytest.raises(ConfigError, match="max_staleness_days: replaced by max_staleness_bars"):
        parse_config({"max_staleness_days": 7})
    with pytest.raises(ConfigError, match="bar_frequency"):
        parse_config({"bar_frequency": "7min"})
    with pytest.raises(ConfigError, match="session"):
        parse_config({"session": "nyse"})
    with pytest.raises(CalendarError, match="no bars to infer"):
        parse_config({}).annualization()  # inferred settings need the bars


def test_as_of_is_a_date_or_an_instant_in_utc():
    from pipelines.run_params import parse_params

    assert parse_params({"as_of": "2024-03-01"}).as_of == date(2024, 3, 1)
    instant = parse_params({"as_of": "2024-03-01T14:00"}).as_of
    assert instant == datetime(2024, 3, 1, 14, tzinfo=UTC)
    assert parse_params({"as_of": "2024-03-01T09:00-05:00"}).as_of == instant
    with pytest.raises(ConfigError, match="as_of"):
        parse_params({"as_of": "yesterday"})


def test_a_run_reads_bars_up_to_its_hour_or_its_whole_day(tmp_path, monkeypatch):
    from pipelines.context import RunContext
    from pipelines.data.sources import load_bars
    from pipelines.settings import Settings

    monkeypatch.setenv("RETUNE_DATA_DIR", str(tmp_path))
    stamps = pd.date_range("2024-03-01", periods=72, freq="h")
    pd.DataFrame(
        {"timestamp": stamps, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}
    ).to_csv(tmp_path / "fx.csv", index=False)
    settings = Settings(tmp_path, "sqlite://", "sqlite://")
    hour = RunContext.create(
        "hourly", "h", {"data": "csv:fx.csv", "as_of": "2024-03-02T05:00Z"}, settings=settings
    )
    day = RunContext.create("daily", "d", {"data": "csv:fx.csv", "as_of": "2024-03-02"}, settings=settings)
    assert load_bars("csv:fx.csv", hour.data_until)["timestamp"].iloc[-1] == pd.Timestamp("2024-03-02 05:00")
    assert load_bars("csv:fx.csv", day.data_until)["timestamp"].iloc[-1] == pd.Timestamp("2024-03-02 23:00")
    assert load_bars("csv:fx.csv", "2024-03-02")["timestamp"].iloc[-1] == pd.Timestamp("2024-03-02 23:00")


def test_later_steps_read_the_calendar_the_validate_step_resolved(tmp_path):
    from pipelines.context import CALENDAR_FILE, RunContext
    from pipelines.settings import Settings

    settings = Settings(tmp_path, "sqlite://", "sqlite://")
    before = RunContext.create("hourly", "r", {"data": "sample:sp500"}, settings=settings)
    assert before.config.bar_frequency is None and before.config.window == "3mo"
    calendar = BarCalendar(BarFrequency.parse("1h"), SESSIONS["24x5"])
    before.run_dir.mkdir(parents=True)
    (before.run_dir / CALENDAR_FILE).write_text(json.dumps(calendar.to_dict()))
    after = RunContext.create("hourly", "r", {"data": "sample:sp500"}, settings=settings)
    assert (after.config.bar_frequency, after.config.session) == ("1h", "24x5")
    assert after.calendar.bars_per_year == 6240
    assert after.config.window_bars == 1560  # the hourly default's 3-month window, in bars


def test_time_of_day_is_a_feature_of_intraday_models_only(make_bars):
    from pipelines.features.core import FeatureScaler, compute_features, next_return

    bars = make_bars(300, seed=5)
    daily = compute_features(bars)
    scaler = FeatureScaler.fit(daily, next_return(bars))
    assert "tod_sin" not in scaler.features and "dow_sin" in scaler.features
    hourly = bars.assign(timestamp=pd.date_range("2024-01-01", periods=len(bars), freq="h"))
    features = compute_features(hourly)
    scaler = FeatureScaler.fit(features, next_return(hourly))
    assert {"tod_sin", "tod_cos", "dow_sin"} <= set(scaler.features)
    hour = features.index.hour + features.index.minute / 60
    np.testing.assert_allclose(features["tod_sin"].dropna(), np.sin(2 * math.pi * hour / 24)[24:], atol=1e-12)
    assert scaler.transform(features).shape[1] == len(scaler.features)


def test_sizes_given_in_time_become_bars_of_the_run_calendar():
    config = parse_config({"window": "3mo", "val_window": "1w", "holdout_window": "2w", "n_folds": 2})
    fx = config.with_calendar(BarCalendar(BarFrequency.parse("1h"), SESSIONS["24x5"]))
    assert (fx.window_bars, fx.val_bars, fx.holdout_bars) == (1560, 120, 240)
    assert (fx.bar_frequency, fx.session) == ("1h", "24x5")
    assert fx.min_history_terms[:2] == (("2 folds × 120", 240), ("holdout 240", 240))
    daily = config.with_calendar(BarCalendar(BarFrequency.parse("1d"), SESSIONS["xnys"]))
    assert (daily.window_bars, daily.val_bars, daily.holdout_bars) == (100, 10, 20)  # the fields' minimums


def test_a_context_built_before_validate_picks_up_its_calendar(tmp_path):
    """``retune run`` builds one context for the whole chain, before validate wrote the calendar."""
    from pipelines.context import CALENDAR_FILE, RunContext
    from pipelines.settings import Settings

    ctx = RunContext.create("daily", "one", {"data": "sample:sp500"}, settings=Settings(tmp_path, "", ""))
    assert ctx.with_run_calendar() is ctx  # nothing resolved yet
    ctx.run_dir.mkdir(parents=True)
    daily = BarCalendar(BarFrequency.parse("1d"), SESSIONS["xnys"])
    (ctx.run_dir / CALENDAR_FILE).write_text(json.dumps(daily.to_dict()))
    later = ctx.with_run_calendar()
    assert later.calendar.bars_per_year == 252 and later.config.session == "xnys"
    assert later.with_run_calendar() is later  # idempotent
