"""pipelines.validation.suite: clean bars pass; each defect stops the chain, naming the expectation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from pipelines.validation.suite import BarExpectations, BarValidationError, validate_bars

N = 120


@pytest.fixture(scope="module")
def clean(make_bars) -> pd.DataFrame:
    return make_bars(N, seed=11)


def _spec(bars: pd.DataFrame, **overrides) -> BarExpectations:
    base = {"min_rows": 100, "as_of": bars["timestamp"].iloc[-1], "max_staleness": pd.Timedelta(days=7)}
    return BarExpectations(**(base | overrides))


def _failure(bars: pd.DataFrame, spec: BarExpectations) -> BarValidationError:
    with pytest.raises(BarValidationError) as err:
        validate_bars(bars, spec)
    return err.value


def test_clean_bars_pass(clean):
    result = validate_bars(clean, _spec(clean))
    assert result["success"] is True
    assert result["statistics"]["unsuccessful_expectations"] == 0
    assert result["statistics"]["evaluated_expectations"] >= 10


def test_negative_close_fails(clean):
    bars = clean.copy()
    bars.loc[40, "close"] = -1.0
    err = _failure(bars, _spec(bars))
    assert "expect_column_values_to_be_between(column=close" in str(err)
    assert "row 40" in str(err)


def test_zero_price_fails_strict_minimum(clean):
    bars = clean.copy()
    bars.loc[10, ["open", "low"]] = 0.0
    err = _failure(bars, _spec(bars))
    assert "expect_column_values_to_be_between(column=open" in str(err)
    assert "expect_column_values_to_be_between(column=low" in str(err)


def test_duplicated_timestamp_fails(clean):
    bars = clean.copy()
    bars.loc[51, "timestamp"] = bars.loc[50, "timestamp"]
    err = _failure(bars, _spec(bars))
    assert "expect_column_values_to_be_unique(column=timestamp" in str(err)
    assert not any("to_be_between" in f for f in err.failures)


def test_unordered_timestamps_fail(clean):
    bars = clean.copy()
    bars.loc[[30, 31], "timestamp"] = bars.loc[[31, 30], "timestamp"].to_numpy()
    err = _failure(bars, _spec(bars))
    assert "expect_column_values_to_be_increasing(column=timestamp" in str(err)


@pytest.mark.parametrize("column", ["close", "volume"])
def test_null_fails(clean, column):
    bars = clean.copy()
    bars.loc[70, column] = np.nan
    err = _failure(bars, _spec(bars))
    assert f"expect_column_values_to_not_be_null(column={column})" in str(err)


def test_high_below_close_fails(clean):
    bars = clean.copy()
    bars.loc[60, "high"] = bars.loc[60, "close"] * 0.999
    bars.loc[60, "low"] = min(bars.loc[60, "low"], bars.loc[60, "high"] * 0.99)
    err = _failure(bars, _spec(bars))
    assert "expect_column_pair_values_a_to_be_greater_than_b(column_A=high, column_B=close" in str(err)


def test_low_above_open_fails(clean):
    bars = clean.copy()
    bars.loc[61, "low"] = bars.loc[61, "open"] * 1.001
    err = _failure(bars, _spec(bars))
    assert "expect_column_pair_values_a_to_be_greater_than_b(column_A=open, column_B=low" in str(err)


def test_too_few_rows_fail(clean):
    err = _failure(clean, _spec(clean, min_rows=N + 1))
    assert "expect_table_row_count_to_be_between" in str(err)
    assert f"observed {N}" in str(err)


def test_stale_last_bar_fails(clean):
    last = clean["timestamp"].iloc[-1]
    week = pd.Timedelta(days=7)
    err = _failure(clean, _spec(clean, as_of=last + pd.Timedelta(days=8), max_staleness=week))
    assert "expect_column_max_to_be_between(column=timestamp" in str(err)
    # exactly max_staleness old is still fresh enough
    validate_bars(clean, _spec(clean, as_of=last + week, max_staleness=week))


def test_staleness_is_counted_in_bars_of_the_calendar(make_bars):
    """Hourly bars 7 days old used to pass (7 whole days); now 5 bars + the weekend is the limit."""
    from pipelines.calendar import SESSIONS, BarCalendar, BarFrequency
    from pipelines.config_files import parse_config

    config = parse_config({"max_staleness_bars": 5})
    hourly_fx = BarCalendar(BarFrequency.parse("1h"), SESSIONS["24x5"])
    bars = make_bars(700, seed=3)
    bars["timestamp"] = pd.date_range("2024-03-04", periods=len(bars), freq="h")  # a Monday
    last = bars["timestamp"].iloc[-1]
    spec = BarExpectations.from_config(config, as_of=last + pd.Timedelta(days=7), calendar=hourly_fx)
    assert spec.max_staleness == pd.Timedelta(hours=5 + 48)
    err = _failure(bars, spec)
    assert any(
        "is more than 2 days 05:00:00 (max_staleness_bars=5 1h bars plus the 24x5 session's weekend)" in f
        for f in err.failures
    ), err.failures
    fresh = BarExpectations.from_config(config, as_of=last + pd.Timedelta(hours=53), calendar=hourly_fx)
    validate_bars(bars, fresh)
    crypto = BarCalendar(BarFrequency.parse("1h"), SESSIONS["24x7"])
    assert BarExpectations.from_config(config, as_of=last, calendar=crypto).max_staleness == pd.Timedelta(
        hours=5
    )
    daily_equity = BarCalendar(BarFrequency.parse("1d"), SESSIONS["xnys"])
    week = BarExpectations.from_config(config, as_of=last, calendar=daily_equity).max_staleness
    assert week == pd.Timedelta(days=7, hours=17, minutes=30)  # 5 sessions + Friday close to Monday open


def test_missing_column_fails(clean):
    bars = clean.drop(columns=["volume"])
    err = _failure(bars, _spec(bars))
    assert err.failures == [
        "missing columns: volume (bars need timestamp, open, high, low, close, volume; a `date` column "
        "is taken as timestamp) [GX: expect_column_to_exist failed for volume]"
    ]
    assert err.result["success"] is False


def test_a_close_only_series_is_refused_in_one_line_naming_the_missing_columns(clean):
    """Without them 17 expectations failed, the missing columns last; now they come alone."""
    bars = clean[["timestamp", "close"]].head(50)  # also too short: not worth a second line
    err = _failure(bars, _spec(bars))
    assert len(err.failures) == 1
    assert err.failures[0].startswith("missing columns: open, high, low, volume (bars need")
    assert sum(not r["success"] for r in err.result["results"]) > 4  # GX did fail the others


def test_too_little_history_says_what_the_need_is_made_of(make_bars):
    from pipelines.config_files import default_config

    bars = make_bars(156, seed=12)
    spec = BarExpectations.from_config(default_config("daily"), as_of=bars["timestamp"].iloc[-1])
    err = _failure(bars, spec)
    assert err.failures == [
        "need 1076 bars: 3 folds × 252 + holdout 120 + 200 training; have 156 "
        "[GX: expect_table_row_count_to_be_between(min_value=1076): observed 156]"
    ]


def test_history_terms_add_up_to_the_minimum_with_an_embargo():
    from pipelines.config_files import parse_config

    config = parse_config({"n_folds": 3, "val_bars": 100, "embargo_bars": 5, "holdout_bars": 60})
    assert [label for label, _ in config.min_history_terms] == [
        "3 folds × 100",
        "embargo 5",
        "holdout 60",
        "200 training",
    ]
    assert config.min_history_bars == 300 + 5 + 60 + 200


@pytest.mark.parametrize("factor", [10.0, 0.1])
def test_a_ten_fold_price_jump_fails(clean, factor):
    """A unit or split error from bar 60 on: one jump, which both jump checks catch."""
    bars = clean.copy()
    bars.loc[60:, ["open", "high", "low", "close"]] *= factor
    err = _failure(bars, _spec(bars))
    assert len(err.failures) == 2, err.failures
    by_ratio, by_sigma = err.failures
    assert by_ratio.startswith("close jumps more than ×2.72 (or ÷) in one bar")
    assert ": 1 bar, e.g. row 60 (" in by_ratio
    assert by_ratio.index("e.g. row 60") < by_ratio.index(
        "[GX: expect_column_values_to_be_between(column=close_log_return"
    )
    assert by_sigma.startswith("close moves more than max_jump_sigmas=25 robust standard deviations")
    assert "column=close_jump_sigmas, max_value=25.0" in by_sigma
    # thresholds come from the spec (the config): off, the same bars pass
    validate_bars(bars, _spec(bars, max_abs_log_return=None, max_jump_sigmas=None))


def test_jump_sigmas_threshold_is_the_configs(clean):
    """A 12% bar in a 1%-vol walk: ~14 robust std devs and |ln| 0.11 — passes at 25, fails at 10."""
    from pipelines.config_files import parse_config
    from pipelines.validation.suite import derived_columns

    bars = clean.copy()
    bars.loc[80:, ["open", "high", "low", "close"]] *= 1.12
    sigmas = derived_columns(bars).loc[80, "close_jump_sigmas"]
    assert 10 < sigmas < 25
    validate_bars(bars, _spec(bars))
    config = parse_config({"max_jump_sigmas": 10})
    strict = BarExpectations.from_config(config, as_of=bars["timestamp"].iloc[-1])
    with pytest.raises(BarValidationError, match="max_jump_sigmas=10 robust") as err:
        validate_bars(bars, dataclasses.replace(strict, min_rows=100))
    assert len(err.value.failures) == 1 and "row 80" in err.value.failures[0]


def test_zero_volume_runs_fail_beyond_the_threshold(clean):
    bars = clean.copy()
    bars.loc[[10, 20, 21, 22], "volume"] = 0.0  # isolated zero-volume bars happen in real indexes
    validate_bars(bars, _spec(bars))
    bars.loc[40:43, "volume"] = 0.0  # four in a row
    err = _failure(bars, _spec(bars))
    assert err.failures[0].startswith("volume is 0 for more than max_zero_volume_bars=3 bars in a row")
    assert "1 bar, e.g. row 43 (" in err.failures[0] and "the 4th zero-volume bar in a row" in err.failures[0]
    assert "[GX: expect_column_values_to_be_between(column=zero_volume_run, max_value=3.0)" in err.failures[0]
    validate_bars(bars, _spec(bars, max_zero_volume_bars=None))  # quotes without volume: switch it off


def test_stale_repeated_prices_fail_beyond_the_threshold(clean):
    bars = clean.copy()
    bars.loc[30:35, "close"] = bars.loc[29, "close"]  # 7 bars at one close: 6 unchanged in a row
    bars.loc[30:35, ["open", "high", "low"]] = bars.loc[29, "close"]
    err = _failure(bars, _spec(bars))
    assert len(err.failures) == 1, err.failures
    assert err.failures[0].startswith("close does not change for more than max_repeated_closes=5 bars")
    assert f"row 35 ({bars.loc[35, 'timestamp']:%Y-%m-%d}): close " in err.failures[0]
    assert "for 7 bars" in err.failures[0]
    validate_bars(bars, _spec(bars, max_repeated_closes=6))


@pytest.mark.parametrize("name", ["sp500", "nasdaq", "goog"])
def test_real_bundled_bars_pass_the_default_thresholds(name):
    """The new checks must not cry wolf on real data: 2008, flash crashes, earnings gaps included."""
    from pipelines.config_files import default_config
    from pipelines.data.sources import load_bars

    bars = load_bars(f"sample:{name}")
    spec = BarExpectations.from_config(default_config("daily"), as_of=bars["timestamp"].iloc[-1])
    assert validate_bars(bars, spec)["statistics"]["unsuccessful_expectations"] == 0
