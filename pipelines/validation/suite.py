"""The Great Expectations suite for OHLCV bars, run in-process on a DataFrame.

GX results never raise: ``validate_bars`` turns a failed suite into a ``BarValidationError``
whose message says what is wrong in a trader's words first (which bar, which value, which
setting), then the GX expectation that caught it. Missing columns are reported alone, in one
line: every other check on a frame without them would only repeat the news.

Besides the shape of a bar (prices > 0, high ≥ open/close ≥ low, increasing timestamps), the
suite checks what corrupts a backtest silently: one-bar jumps (a 10× unit or split error),
runs of zero volume and stale repeated prices. Those are GX expectations on columns derived
from the bars (``close_log_return``, ``close_jump_sigmas``, ``zero_volume_run``,
``repeated_close_run``), with thresholds from the config.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.calendar import BarCalendar
from pipelines.config import PipelineConfig
from pipelines.data.sources import OHLCV

log = logging.getLogger(__name__)
_DEFAULTS = PipelineConfig.model_fields  # the thresholds' one home: the config's defaults

# robust standard deviation = 1.4826 x median absolute deviation (consistent for normal data)
MAD_TO_SD = 1.4826


class BarValidationError(ValueError):
    """The bars failed the suite; ``failures`` holds one summary per failed expectation."""

    def __init__(self, failures: list[str], result: dict[str, Any], missing_columns: bool = False):
        self.failures = failures
        self.result = result
        self.missing_columns = missing_columns
        super().__init__("market bars failed validation:\n" + "\n".join(f"  - {f}" for f in failures))


@dataclass(frozen=True)
class BarExpectations:
    """The suite's thresholds; ``None`` turns a check off."""

    min_rows: int
    as_of: pd.Timestamp  # the newest bar time the run may read (UTC-naive)
    max_staleness: pd.Timedelta | None = None  # how much older the last bar may be; None: off
    staleness_says: str = ""  # what max_staleness is made of, for the message
    columns: tuple[str, ...] = field(default=("timestamp", *OHLCV))
    # what min_rows is made of, for the message ("2 folds × 126", 252), from the config
    min_rows_terms: tuple[tuple[str, int], ...] = ()
    max_abs_log_return: float | None = _DEFAULTS["max_abs_log_return"].default
    max_jump_sigmas: float | None = _DEFAULTS["max_jump_sigmas"].default
    max_zero_volume_bars: int | None = _DEFAULTS["max_zero_volume_bars"].default
    max_repeated_closes: int | None = _DEFAULTS["max_repeated_closes"].default

    @classmethod
    def from_config(
        cls, config: PipelineConfig, as_of: pd.Timestamp, calendar: BarCalendar | None = None
    ) -> BarExpectations:
        """The config's thresholds; staleness needs the bar calendar (none: not checked)."""
        bars = config.max_staleness_bars
        stale = calendar.max_staleness(bars) if calendar is not None and bars is not None else None
        return cls(
            min_rows=config.min_history_bars,
            as_of=as_of,
            max_staleness=stale,
            staleness_says=(
                f"max_staleness_bars={bars} {calendar.frequency} bars plus the {calendar.session.name} "
                f"session's weekend"
                if stale is not None and calendar is not None
                else ""
            ),
            min_rows_terms=config.min_history_terms,
            max_abs_log_return=config.max_abs_log_return,
            max_jump_sigmas=config.max_jump_sigmas,
            max_zero_volume_bars=config.max_zero_volume_bars,
            max_repeated_closes=config.max_repeated_closes,
        )


def derived_columns(bars: pd.DataFrame) -> pd.DataFrame:
    """The bars plus the columns the jump, zero-volume and stale-price expectations look at."""
    out = bars.copy()
    if "close" in bars.columns:
        close = pd.to_numeric(bars["close"], errors="coerce").where(lambda c: c > 0)
        log_return = np.log(close).diff()
        out["close_log_return"] = log_return
        deviation = (log_return - log_return.median()).abs()
        robust_sd = MAD_TO_SD * float(deviation.median()) if deviation.notna().any() else 0.0
        # flat prices have no spread to measure jumps against: the stale-price check covers them
        out["close_jump_sigmas"] = deviation / robust_sd if robust_sd > 0 else np.nan
        out["repeated_close_run"] = _run_length(bars["close"].diff().eq(0))
    if "volume" in bars.columns:
        out["zero_volume_run"] = _run_length(bars["volume"].eq(0))
    return out


def _run_length(flags: pd.Series) -> pd.Series:
    """At each row, how many rows in a row up to it are flagged (0 where it is not)."""
    flags = flags.fillna(False).astype(bool)
    return flags.groupby((~flags).cumsum()).cumsum().astype(int)


def build_suite(spec: BarExpectations):
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name="ohlcv_bars")

    def add(expectation, says: str) -> None:
        expectation.meta = {"says": says}  # the user's words, kept in the GX result and its JSON
        suite.add_expectation(expectation)

    for col in spec.columns:
        add(gxe.ExpectColumnToExist(column=col), f"{col} column")
        add(gxe.ExpectColumnValuesToNotBeNull(column=col), f"{col} is empty")
    for col in ("open", "high", "low", "close"):
        add(gxe.ExpectColumnValuesToBeBetween(column=col, min_value=0, strict_min=True), f"{col} is not > 0")
    add(gxe.ExpectColumnValuesToBeBetween(column="volume", min_value=0), "volume is negative")
    for col in ("open", "close"):
        add(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="high", column_B=col, or_equal=True),
            f"high is below {col}",
        )
        add(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=col, column_B="low", or_equal=True),
            f"low is above {col}",
        )
    add(gxe.ExpectColumnValuesToBeUnique(column="timestamp"), "the timestamp repeats")
    add(
        gxe.ExpectColumnValuesToBeIncreasing(column="timestamp", strictly=True),
        "the timestamp is not after the previous bar's",
    )
    add(gxe.ExpectTableRowCountToBeBetween(min_value=spec.min_rows), "too little history")
    if spec.max_staleness is not None:
        oldest_allowed = spec.as_of - spec.max_staleness
        add(gxe.ExpectColumnMaxToBeBetween(column="timestamp", min_value=oldest_allowed), "stale data")
    if spec.max_abs_log_return is not None:
        bound = spec.max_abs_log_return
        add(
            gxe.ExpectColumnValuesToBeBetween(column="close_log_return", min_value=-bound, max_value=bound),
            f"close jumps more than ×{np.exp(bound):.3g} (or ÷) in one bar "
            f"(|ln(close / previous close)| > max_abs_log_return={bound:g})",
        )
    if spec.max_jump_sigmas is not None:
        add(
            gxe.ExpectColumnValuesToBeBetween(column="close_jump_sigmas", max_value=spec.max_jump_sigmas),
            f"close moves more than max_jump_sigmas={spec.max_jump_sigmas:g} robust standard "
            "deviations of this series' bar-to-bar returns in one bar",
        )
    if spec.max_zero_volume_bars is not None:
        add(
            gxe.ExpectColumnValuesToBeBetween(column="zero_volume_run", max_value=spec.max_zero_volume_bars),
            f"volume is 0 for more than max_zero_volume_bars={spec.max_zero_volume_bars} bars in a row "
            "(set it to null for quotes without volume)",
        )
    if spec.max_repeated_closes is not None:
        add(
            gxe.ExpectColumnValuesToBeBetween(
                column="repeated_close_run", max_value=spec.max_repeated_closes
            ),
            f"close does not change for more than max_repeated_closes={spec.max_repeated_closes} bars in "
            "a row (a stale feed?)",
        )
    return suite


def run_suite(bars: pd.DataFrame, spec: BarExpectations) -> dict[str, Any]:
    """Run the suite with an ephemeral GX context and return GX's JSON result."""
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    _quiet_progress_bars(context)
    source = context.data_sources.add_pandas("bars")
    batch = source.add_dataframe_asset("bars").add_batch_definition_whole_dataframe("all")
    suite = context.suites.add(build_suite(spec))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="ohlcv_bars", data=batch, suite=suite)
    )
    result = definition.run(
        batch_parameters={"dataframe": derived_columns(bars)},
        result_format={"result_format": "COMPLETE", "partial_unexpected_count": 3},
    )
    return result.to_json_dict()


def validate_bars(bars: pd.DataFrame, spec: BarExpectations) -> dict[str, Any]:
    """Validate ``bars``; return the GX result or raise ``BarValidationError`` naming each failure."""
    result = run_suite(bars, spec)
    failed = [r for r in result["results"] if not r["success"]]
    missing = [
        r["expectation_config"]["kwargs"]["column"]
        for r in failed
        if r["expectation_config"]["type"] == "expect_column_to_exist"
    ]
    if missing:  # alone: every other failure follows from it
        raise BarValidationError([_missing_columns(missing, spec)], result, missing_columns=True)
    checked = derived_columns(bars)
    failures = [_describe(r, checked, spec) for r in failed]
    if failures:
        raise BarValidationError(failures, result)
    return result


def _missing_columns(missing: list[str], spec: BarExpectations) -> str:
    return (
        f"missing columns: {', '.join(missing)} (bars need {', '.join(spec.columns)}; "
        "a `date` column is taken as timestamp) "
        f"[GX: expect_column_to_exist failed for {', '.join(missing)}]"
    )


def _describe(r: dict[str, Any], bars: pd.DataFrame, spec: BarExpectations) -> str:
    """``what is wrong, e.g. where [GX: expectation(kwargs): result]``; ``bars`` as GX saw them."""
    config = r["expectation_config"]
    kwargs = {k: v for k, v in config["kwargs"].items() if k not in ("batch_id",)}
    what = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    res = r.get("result") or {}
    says = (config.get("meta") or {}).get("says") or config["type"]
    gx_detail = ""
    if res.get("unexpected_count"):
        n = res["unexpected_count"]
        says += f": {n} bar{'s' if n != 1 else ''}"
        gx_detail = f": {n} bad rows"
        index = (res.get("partial_unexpected_index_list") or [None])[0]
        if index is not None and index in bars.index:
            says += f", e.g. {_bar(bars, index, kwargs)}"
            raw = bars.loc[index, [c for c in spec.columns if c in bars.columns]]
            gx_detail += f", e.g. row {index}: {raw.to_dict()}"
    elif config["type"] == "expect_table_row_count_to_be_between" and "observed_value" in res:
        says = _history(spec, res["observed_value"])
        gx_detail = f": observed {res['observed_value']}"
    elif config["type"] == "expect_column_max_to_be_between" and "observed_value" in res:
        says = (
            f"the last bar ({_when(res['observed_value'])}) is more than {spec.max_staleness} "
            f"({spec.staleness_says or 'max_staleness'}) before the run's data cutoff "
            f"({spec.as_of:%Y-%m-%d %H:%M})"
        )
        gx_detail = f": observed {res['observed_value']}"
    elif "observed_value" in res:
        gx_detail = f": observed {res['observed_value']}"
    if r.get("exception_info", {}).get("raised_exception"):
        gx_detail += f" (error: {r['exception_info'].get('exception_message')})"
    return f"{says} [GX: {config['type']}({what}){gx_detail}]"


def _history(spec: BarExpectations, observed: Any) -> str:
    terms = " + ".join(label for label, _ in spec.min_rows_terms) if spec.min_rows_terms else "the config"
    return f"need {spec.min_rows} bars: {terms}; have {observed}"


def _bar(bars: pd.DataFrame, index: Any, kwargs: dict[str, Any]) -> str:
    """A failing bar in words: its row, time and the values the check looked at."""
    row = bars.loc[index]
    when = f" ({_when(row['timestamp'])})" if "timestamp" in bars.columns else ""
    column = kwargs.get("column") or kwargs.get("column_A")
    columns = [c for c in (column, kwargs.get("column_B")) if c in bars.columns]
    if column in ("close_log_return", "close_jump_sigmas") and index - 1 in bars.index:
        move = f"close {bars.loc[index - 1, 'close']:.6g} → {row['close']:.6g}"
        return f"row {index}{when}: {move} ({row['close_jump_sigmas']:.0f} robust std devs)"
    if column == "repeated_close_run":
        return f"row {index}{when}: close {row['close']:.6g} for {row[column] + 1} bars"
    if column == "zero_volume_run":
        return f"row {index}{when}: the {row[column]}th zero-volume bar in a row"
    values = ", ".join(f"{c}={row[c]}" for c in columns)
    return f"row {index}{when}" + (f": {values}" if values else "")


def _when(value: Any) -> str:
    stamp = pd.Timestamp(value) if pd.notna(value) else None
    if stamp is None:
        return "no timestamp"
    return f"{stamp:%Y-%m-%d}" if stamp == stamp.normalize() else str(stamp)


def _quiet_progress_bars(context) -> None:
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # noqa: BLE001 - cosmetic only
        log.debug("could not disable GX progress bars", exc_info=True)
