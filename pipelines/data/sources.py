"""Bar sources: bundled sample, CSV, Parquet, or a PostgreSQL/SQLite table.

Every source returns the same frame: a ``timestamp`` column (UTC-naive datetimes) and
lower-case ``open, high, low, close, volume``, cut at the run's ``as_of`` (a date: the whole
day; a time: up to that instant) so a run for date D reads data up to D only. Aware timestamps
are converted to UTC; naive ones are taken as UTC.

CSV and Parquet paths are confined to the data directory (``RETUNE_DATA_DIR``, default the
working directory), whoever passes them (a DAG trigger, ``retune run``, ``retune predict``): a
path that is absolute outside it, contains ``..`` or resolves through a symlink to a file
outside it is refused before any file is opened. Errors about a file never quote its contents,
so a refused or unparsable file cannot leak into a terminal or the run store.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pandas as pd

OHLCV = ["open", "high", "low", "close", "volume"]
SAMPLES = ("sp500", "nasdaq", "goog")
_NOT_KEY = re.compile(r"[^a-z0-9_]+")
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

    @property
    def instrument(self) -> str:
        """The model key a run on this source gets unless its config names one.

        A file's stem, a table's name (``schema.name`` → ``schema_name``) or a sample's name,
        lower-cased and reduced to ``[a-z0-9_]`` (the model-key pattern), so runs on different
        instruments never fine-tune one another's model.
        """
        name = Path(self.target).stem if self.kind in ("csv", "parquet") else self.target
        key = _NOT_KEY.sub("_", name.lower()).strip("_")[:64].strip("_")
        if not key:
            raise DataSourceError(
                f"{self}: no model key can be made from this name; set model_key in a config (--config)"
            )
        return key

    def check(self) -> DataSource:
        """Refuse a file source whose path leads outside the data directory; opens nothing.

        Whether the file exists is left to the read, which reports it as a failed run.
        """
        if self.kind in ("csv", "parquet"):
            confined_path(self, must_exist=False)
        return self


def data_dir() -> Path:
    """The folder CSV/Parquet sources must live in: ``RETUNE_DATA_DIR``, else the working dir."""
    return Path(os.environ.get("RETUNE_DATA_DIR") or ".").resolve()


def confined_path(source: DataSource, root: Path | None = None, must_exist: bool = True) -> Path:
    """The resolved file of a csv/parquet source, refused unless it is a file inside ``root``.

    Only the path is looked at (``lstat``/``readlink`` while resolving symlinks); the file is
    not opened here.
    """
    root = (root or data_dir()).resolve()
    target = source.target
    if "\x00" in target:
        raise DataSourceError(f"{source}: a path must not contain NUL bytes")
    given = Path(target)
    if ".." in given.parts:
        raise DataSourceError(
            f"{source}: '..' is not allowed; give a path under the data directory {root} (RETUNE_DATA_DIR)"
        )
    resolved = (given if given.is_absolute() else root / given).resolve()
    if not resolved.is_relative_to(root):
        raise DataSourceError(
            f"{source}: refused, the file is outside the data directory {root}; "
            "put it there or point RETUNE_DATA_DIR at its folder"
        )
    if must_exist and not resolved.is_file():
        raise DataSourceError(f"{source}: file not found in the data directory {root}")
    return resolved


def load_bars(
    spec: str, as_of: pd.Timestamp | datetime | date | str | None = None, db_url: str | None = None
) -> pd.DataFrame:
    """Load bars from ``spec``, normalized and cut at ``as_of``, inclusive: the end of that day
    for a date (``date`` or ``YYYY-MM-DD``), that instant for a time (aware, or naive UTC)."""
    source = DataSource.parse(spec)
    raw = _read(source, db_url)
    bars = normalize(raw, str(source))
    if as_of is not None:
        bars = bars[bars["timestamp"] <= data_cutoff(as_of)].reset_index(drop=True)
    return bars


def data_cutoff(as_of: pd.Timestamp | datetime | date | str) -> pd.Timestamp:
    """The newest bar time (UTC-naive, inclusive) a run for ``as_of`` may read."""
    whole_day = (isinstance(as_of, date) and not isinstance(as_of, datetime)) or (
        isinstance(as_of, str) and len(as_of.strip()) == 10
    )
    stamp = pd.Timestamp(as_of)
    stamp = stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp
    if whole_day:
        return stamp.normalize() + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")
    return stamp


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
        # Never quote the header: a file that is not bars (a config, a password file) would leak.
        raise DataSourceError(
            f"{name}: none of its {len(frame.columns)} columns is a timestamp or date column "
            f"(bars need timestamp or date, {', '.join(OHLCV)})"
        )
    try:
        ts = pd.to_datetime(frame["timestamp"], utc=True)
    except (ValueError, TypeError, OverflowError):
        # pandas' message quotes the offending value: say where it is instead
        bad = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce").isna()
        row = int(bad.to_numpy().argmax()) if bad.any() else 0
        raise DataSourceError(
            f"{name}: the timestamp column is not parseable as dates (first bad value in data row {row + 1})"
        ) from None
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
        return _read_file(source, data_dir())
    return _read_table(source.target, db_url)


def _read_file(source: DataSource, root: Path) -> pd.DataFrame:
    path = confined_path(source, root)
    # O_NOFOLLOW + O_NONBLOCK: a symlink or FIFO swapped in after the check is not followed or
    # waited on; the descriptor's real path is checked again before a byte is read.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        raise DataSourceError(f"{source}: cannot open the file in the data directory {root}") from None
    with os.fdopen(fd, "rb") as handle:
        opened = Path(f"/proc/self/fd/{fd}")
        real = Path(os.readlink(opened)) if opened.is_symlink() else path
        if not stat.S_ISREG(os.fstat(fd).st_mode) or not real.is_relative_to(root):
            raise DataSourceError(f"{source}: refused, not a regular file in the data directory {root}")
        try:
            return pd.read_csv(handle) if source.kind == "csv" else pd.read_parquet(handle)
        except Exception as exc:  # noqa: BLE001 - parser messages may quote the file
            kind = "CSV" if source.kind == "csv" else "Parquet"
            raise DataSourceError(f"{source}: not a readable {kind} file ({type(exc).__name__})") from None


def _read_table(table: str, db_url: str | None) -> pd.DataFrame:
    import sqlalchemy as sa

    if not db_url:
        raise DataSourceError("table source needs a database URL (RETUNE_DB_URL)")
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
