"""pipelines.data.sources: parsing ``--data`` values and loading bars up to ``as_of``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from pipelines.config import ConfigError
from pipelines.context import RUN_ID_PATTERN, check_run_id, safe_run_id
from pipelines.data.sources import OHLCV, DataSource, DataSourceError, load_bars
from pipelines.run_params import parse_params

_OPENED: list[str] | None = None  # paths opened while a test records them (see _record_opens)


def _audit(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], str | bytes | os.PathLike):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)  # CPython reports every open()/os.open(); hooks cannot be removed, so gated


@pytest.fixture
def opened():
    """Paths the interpreter opens during the test (builtin open and os.open, via audit events)."""
    global _OPENED
    _OPENED = []
    try:
        yield _OPENED
    finally:
        _OPENED = None


@pytest.fixture(autouse=True)
def _data_dir(tmp_path, monkeypatch):
    """Every test's files live in its tmp_path, which is its RETUNE_DATA_DIR."""
    monkeypatch.setenv("RETUNE_DATA_DIR", str(tmp_path))


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
    pd.DataFrame({"close": [1.0, 2.0], "volume": [3.0, 4.0]}).to_csv(path, index=False)
    with pytest.raises(DataSourceError, match="none of its 2 columns is a timestamp or date column"):
        load_bars(f"csv:{path}")


@pytest.fixture
def outside(tmp_path_factory) -> Path:
    """A secret file outside the data directory (a stand-in for /etc/shadow)."""
    path = tmp_path_factory.mktemp("outside") / "shadow.csv"
    path.write_text("timestamp,open,high,low,close,volume\nroot:SECRET-HASH:19000:0:99999:7:::\n")
    return path


def _hostile_specs(tmp_path: Path, outside: Path) -> dict[str, str]:
    (tmp_path / "link.csv").symlink_to(outside)
    (tmp_path / "linkdir").symlink_to(outside.parent, target_is_directory=True)
    depth = len(tmp_path.parts)
    return {
        "absolute outside": f"csv:{outside}",
        "parquet absolute": f"parquet:{outside}",
        "system file": "csv:/etc/passwd",
        "dot-dot": "csv:" + "../" * depth + str(outside).lstrip("/"),
        "dot-dot inside an absolute path": f"csv:{tmp_path}/../{outside.parent.name}/{outside.name}",
        "dot-dot that stays inside": "csv:sub/../bars.csv",
        "symlinked file": "csv:link.csv",
        "symlinked folder": f"csv:linkdir/{outside.name}",
        "bare path": str(outside),
    }


@pytest.mark.parametrize(
    "case",
    [
        "absolute outside",
        "parquet absolute",
        "system file",
        "dot-dot",
        "dot-dot inside an absolute path",
        "dot-dot that stays inside",
        "symlinked file",
        "symlinked folder",
        "bare path",
    ],
)
def test_paths_leaving_the_data_dir_are_refused_before_anything_is_opened(tmp_path, outside, opened, case):
    spec = _hostile_specs(tmp_path, outside)[case]
    (tmp_path / "sub").mkdir()
    pd.DataFrame({"timestamp": ["2020-01-01"]}).to_csv(tmp_path / "bars.csv", index=False)
    opened.clear()
    with pytest.raises(DataSourceError) as err:
        load_bars(spec)
    message = str(err.value)
    assert str(tmp_path.resolve()) in message  # names the directory the file must be in
    assert "SECRET" not in message and "root:" not in message
    assert not any(Path(p).name in ("shadow.csv", "passwd", "bars.csv") for p in opened), opened
    # the run params refuse it the same way, so a run never starts (nothing stored)
    with pytest.raises(ConfigError, match="data directory"):
        parse_params({"data": spec})


def test_paths_inside_the_data_dir_are_read_absolute_or_through_inner_symlinks(make_bars, tmp_path):
    bars = make_bars(30, seed=6)
    (tmp_path / "fx").mkdir()
    bars.to_csv(tmp_path / "fx" / "eurusd.csv", index=False)
    (tmp_path / "latest.csv").symlink_to(tmp_path / "fx" / "eurusd.csv")
    for spec in (
        f"csv:{tmp_path}/fx/eurusd.csv",
        "csv:fx/eurusd.csv",
        "csv:./fx/eurusd.csv",
        "csv:latest.csv",
    ):
        assert len(load_bars(spec)) == 30, spec
        assert parse_params({"data": spec}).data == spec


def test_a_file_that_is_not_bars_is_never_quoted(tmp_path):
    """Inside the data dir, a password-like file or bad values fail without echoing content."""
    (tmp_path / "passwd.csv").write_text("root:x:0:0:SECRET-GECOS:/root:/bin/bash\ndaemon:x:1:1::/:/bin/sh\n")
    (tmp_path / "badts.csv").write_text("timestamp,close\n2020-01-02,1\nSECRET-VALUE,2\n")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00SECRET-BYTES\x00\x81")
    (tmp_path / "binary.parquet").write_bytes(b"PAR1SECRET-BYTES")
    expected = {
        "passwd.csv": "none of its 1 columns is a timestamp or date column",
        "badts.csv": "not parseable as dates (first bad value in data row 2)",
        "binary.csv": "not a readable CSV file",
        "binary.parquet": "not a readable Parquet file",
    }
    for name, fragment in expected.items():
        kind = name.rsplit(".", 1)[1]
        with pytest.raises(DataSourceError) as err:
            load_bars(f"{kind}:{name}")
        assert fragment in str(err.value), err.value
        assert "SECRET" not in str(err.value) and "root:" not in str(err.value)


def test_a_fifo_or_folder_is_not_read(tmp_path):
    os.mkfifo(tmp_path / "pipe.csv")  # opening it for reading would block forever
    (tmp_path / "folder.csv").mkdir()
    for name in ("pipe.csv", "folder.csv"):
        with pytest.raises(DataSourceError, match="file not found in the data directory"):
            load_bars(f"csv:{name}")


@pytest.mark.parametrize(
    "value",
    ["../etc", "a/b", "a b", "x;rm -rf /", "", "-flag", "_lead", "trail_", "a..b", "é", "x" * 129, "a\nb"],
)
def test_user_run_ids_outside_the_pattern_are_refused(value):
    with pytest.raises(ConfigError, match="run id .* refused"):
        check_run_id(value)


@pytest.mark.parametrize("value", ["cli-test", "nightly.2026-01-02", "a", "A_1", "x" * 128])
def test_accepted_run_ids_are_used_unchanged(value):
    assert RUN_ID_PATTERN.match(check_run_id(value))
    assert safe_run_id("daily", value) == f"daily__{value}"  # not rewritten


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
