"""Bar sources: bundled sample, CSV, Parquet, or a PostgreSQL/SQLite table.

Every source returns the same frame: a ``timestamp`` column (UTC-naive datetimes) and
lower-case ``open, high, low, close, volume``, cut at the run's ``as_of`` date so a run for
date D reads data up to D only.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

OHLCV = ["open", "high", "low", "close", "volume"]
SAMPLES = ("sp500", "nasdaq", "goog")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")


class DataSourceError(ValueError):
    """The data source cannot be read; the message says which and why."""


@dataclass(frozen=True)
class DataSource:
    """A parsed ``--data`` value: ``sample:NAME``, ``csv:PATH``, ``parquet:PATH``, ``table:NAME``."""

    kind: str
    target: str

    @classmethod
    def parse(cls, spec: str) -> DataSource:
        kind, sep, target = spec.partition(":")
        if not sep:  # a bare path: infer from its suffix
            suffix = Path(spec).suffix.lower()
            kind, target = {".csv": "csv", ".parquet": "parquet"}.get(suffix, "sample"), spec
        if kind == "sample" and target not in SAMPLES:
            raise DataSourceError(f"unknown sample {target!r}; choose one of {', '.join(SAMPLES)}")
        if kind == "table" and not _TABLE.match(target):
            raise DataSourceError(f"table name {target!r} must be [schema.]identifier")
        if kind not in ("sample", "csv", "parquet", "table"):
            raise DataSourceError(f"unknown data source kind {kind!r} (sample, csv, parquet, table)")
        return cls(kind, target)

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"


def load_bars(spec: str, as_of: pd.Timestamp | None = None, db_url: str | None = None) -> pd.DataFrame:
    """Load bars from ``spec``, normalized and cut at ``as_of`` (inclusive, end of that day)."""
    source = DataSource.parse(spec)
    raw = _read(source, db_url)
    bars = normalize(raw, str(source))
    if as_of is not None:
        cutoff = pd.Timestamp(as_of).tz_localize(None).normalize() + pd.Timedelta(days=1)
        bars = bars[bars["timestamp"] < cutoff].reset_index(drop=True)
    return bars


def normalize(raw: pd.DataFrame, name: str = "bars") -> pd.DataFrame:
    """Lower-case columns, a ``timestamp`` column, OHLCV only; missing columns are left for GX."""
    frame = raw.copy()
    named_index = isinstance(frame.index, pd.DatetimeIndex) or frame.index.name is not None
    if "timestamp" not in {str(c).lower() for c in frame.columns} and named_index:
        frame = frame.reset_index()
    frame.columns = [str(c).strip().lower().replace(" ", "_") for c in frame.columns]
    for alias in ("date", "datetime", "time"):
        if "timestamp" not in frame.columns and alias in frame.columns:
            frame = frame.rename(columns={alias: "timestamp"})
    if "timestamp" not in frame.columns:
        raise DataSourceError(f"{name}: no timestamp/date column (columns: {list(frame.columns)})")
    try:
        ts = pd.to_datetime(frame["timestamp"], utc=True)
    except (ValueError, TypeError) as exc:
        raise DataSourceError(f"{name}: timestamp column is not parseable: {exc}") from None
    frame["timestamp"] = ts.dt.tz_localize(None).astype("datetime64[ns]")
    keep = ["timestamp"] + [c for c in OHLCV if c in frame.columns]
    out = frame[keep]
    for col in keep[1:]:
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    return out.reset_index(drop=True)


def _read(source: DataSource, db_url: str | None) -> pd.DataFrame:
    if source.kind == "sample":
        return _sample(source.target)
    if source.kind in ("csv", "parquet"):
        path = Path(source.target)
        if not path.is_absolute():  # relative paths (all a DAG trigger may pass) live here
            path = Path(os.environ.get("RETUNE_DATA_DIR") or ".") / path
        if not path.is_file():
            raise DataSourceError(f"{source}: file not found")
        return pd.read_csv(path) if source.kind == "csv" else pd.read_parquet(path)
    return _read_table(source.target, db_url)


def _read_table(table: str, db_url: str | None) -> pd.DataFrame:
    import sqlalchemy as sa

    if not db_url:
        raise DataSourceError("table source needs a database URL (RETUNE_DATA_URL or RETUNE_DB_URL)")
    engine = sa.create_engine(db_url)
    schema, _, name = table.rpartition(".")
    try:
        meta = sa.MetaData()
        tbl = sa.Table(name, meta, schema=schema or None, autoload_with=engine)
        with engine.connect() as conn:
            return pd.read_sql(sa.select(tbl), conn)
    except sa.exc.NoSuchTableError:
        raise DataSourceError(f"table {table!r} does not exist") from None
    finally:
        engine.dispose()


def _sample(name: str) -> pd.DataFrame:
    """Real daily bars shipped inside PyPI packages (no network needed)."""
    if name == "goog":
        from backtesting.test import GOOG

        return GOOG.rename_axis("timestamp").reset_index()
    from arch.data import nasdaq, sp500

    data = (sp500 if name == "sp500" else nasdaq).load()
    return data.drop(columns=["Adj Close"]).rename_axis("timestamp").reset_index()
