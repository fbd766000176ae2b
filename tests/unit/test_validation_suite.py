"""pipelines.validation.suite: clean bars pass; each defect stops the chain, naming the expectation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.validation.suite import BarExpectations, BarValidationError, validate_bars

N = 120


@pytest.fixture(scope="module")
def clean(make_bars) -> pd.DataFrame:
    return make_bars(N, seed=11)


def _spec(bars: pd.DataFrame, **overrides) -> BarExpectations:
    base = {"min_rows": 100, "as_of": bars["timestamp"].iloc[-1], "max_staleness_days": 7}
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
    err = _failure(clean, _spec(clean, as_of=last + pd.Timedelta(days=8), max_staleness_days=7))
    assert "expect_column_max_to_be_between(column=timestamp" in str(err)
    # exactly max_staleness_days old is still fresh enough
    validate_bars(clean, _spec(clean, as_of=last + pd.Timedelta(days=7), max_staleness_days=7))


def test_missing_column_fails(clean):
    bars = clean.drop(columns=["volume"])
    err = _failure(bars, _spec(bars))
    assert "expect_column_to_exist(column=volume)" in str(err)
    assert err.result["success"] is False
