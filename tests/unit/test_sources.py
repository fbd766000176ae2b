"""pipelines.data.sources: parsing ``--data`` values and loading bars up to ``as_of``."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from pipelines.data.sources import OHLCV, DataSource, DataSourceError, load_bars


@pytest.mark.parametrize(
    ("spec", "kind", "target"),
    [
        ("sample:sp500", "sample", "sp500"),
        ("sample:goog", "sample", "goog"),
        ("csv:data/bars.csv", "csv", "data/bars.csv"),
        ("parquet:bars.parquet", "parquet", "bars.parquet"),
        ("table:bars", "table", "bars"),
        ("table:market.daily_bars", "table", "market.daily_bars"),
        ("data/bars.csv", "csv", "data/bars.csv"),  # bare path: kind from the suffix
        ("bars.PARQUET", "parquet", "bars.PARQUET"),
    ],
)
def test_parse_accepts_every_kind(spec, kind, target):
    source = DataSource.parse(spec)
    assert (source.kind, source.target) == (kind, target)
    assert str(source) == f"{kind}:{target}"


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("sample:bitcoin", "unknown sample"),
        ("table:bars; drop table retune_runs", "must be [schema.]identifier"),
        ("table:1bars", "must be [schema.]identifier"),
        ("table:a.b.c", "must be [schema.]identifier"),
        ("table:bars--", "must be [schema.]identifier"),
        ("table:", "must be [schema.]identifier"),
        ("ftp:host/bars.csv", "unknown data source kind"),
        ("s3:bucket/bars.parquet", "unknown data source kind"),
    ],
)
def test_parse_rejects_bad_specs(spec, fragment):
    with pytest.raises(DataSourceError) as err:
        DataSource.parse(spec)
    assert fragment in str(err.value)


def _write_csv(bars: pd.DataFrame, path) -> None:
    # Upper-case headers and a "Date" column, as real exports have: load_bars normalizes them.
    bars.rename(columns={"timestamp": "Date"} | {c: c.title() for c in OHLCV}).to_csv(path, index=False)


def test_load_bars_csv_cuts_at_as_of(make_bars, tmp_path):
    bars = make_bars(120, seed=1)
    path = tmp_path / "bars.csv"
    _write_csv(bars, path)
    as_of = bars["timestamp"].iloc[59]
    loaded = load_bars(f"csv:{path}", as_of=as_of)
    assert list(loaded.columns) == ["timestamp", *OHLCV]
    assert loaded["timestamp"].max() <= as_of
    assert len(loaded) == 60  # the as_of bar itself is included
    pd.testing.assert_frame_equal(loaded, bars.iloc[:60].reset_index(drop=True), check_exact=False)


def test_load_bars_as_of_includes_the_whole_day_and_accepts_tz(make_bars, tmp_path):
    bars = make_bars(40, seed=2)
    path = tmp_path / "bars.csv"
    bars.to_csv(path, index=False)
    day = bars["timestamp"].iloc[19]
    late_same_day = (day + pd.Timedelta(hours=23)).tz_localize("UTC")
    loaded = load_bars(f"csv:{path}", as_of=late_same_day)
    assert loaded["timestamp"].iloc[-1] == day
    assert len(loaded) == 20


def test_load_bars_without_as_of_returns_everything(make_bars, tmp_path):
    bars = make_bars(30, seed=3)
    path = tmp_path / "bars.parquet"
    bars.to_parquet(path)
    loaded = load_bars(f"parquet:{path}")
    pd.testing.assert_frame_equal(loaded, bars)


def test_relative_path_resolves_under_data_dir(make_bars, tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    (data_dir / "sub").mkdir(parents=True)
    bars = make_bars(25, seed=4)
    bars.to_csv(data_dir / "sub" / "bars.csv", index=False)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("RETUNE_DATA_DIR", str(data_dir))
    loaded = load_bars("csv:sub/bars.csv")
    assert len(loaded) == 25
    with pytest.raises(DataSourceError, match="file not found"):
        load_bars("csv:sub/other.csv")
    # The same relative path is not looked up in the working directory.
    monkeypatch.setenv("RETUNE_DATA_DIR", str(elsewhere))
    with pytest.raises(DataSourceError, match="file not found"):
        load_bars("csv:sub/bars.csv")


def test_csv_without_timestamp_column_is_refused(tmp_path):
    path = tmp_path / "bars.csv"
    pd.DataFrame({"close": [1.0, 2.0]}).to_csv(path, index=False)
    with pytest.raises(DataSourceError, match="no timestamp"):
        load_bars(f"csv:{path}")


def test_table_source_reads_sqlite(make_bars, tmp_path):
    bars = make_bars(50, seed=5)
    url = f"sqlite:///{tmp_path / 'market.db'}"
    engine = sa.create_engine(url)
    try:
        bars.to_sql("daily_bars", engine, index=False)
    finally:
        engine.dispose()
    as_of = bars["timestamp"].iloc[29]
    loaded = load_bars("table:daily_bars", as_of=as_of, db_url=url)
    assert len(loaded) == 30
    assert loaded["timestamp"].max() == as_of
    pd.testing.assert_frame_equal(loaded, bars.iloc[:30].reset_index(drop=True), check_exact=False)


def test_table_source_errors(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(DataSourceError, match="does not exist"):
        load_bars("table:nope", db_url=url)
    with pytest.raises(DataSourceError, match="needs a database URL"):
        load_bars("table:nope", db_url=None)
