"""The Great Expectations suite for OHLCV bars, run in-process on a DataFrame.

GX results never raise: ``validate_bars`` turns a failed suite into a ``BarValidationError``
whose message lists each failed expectation with an example row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipelines.data.sources import OHLCV

log = logging.getLogger(__name__)


class BarValidationError(ValueError):
    """The bars failed the suite; ``failures`` holds one summary per failed expectation."""

    def __init__(self, failures: list[str], result: dict[str, Any]):
        self.failures = failures
        self.result = result
        super().__init__("market bars failed validation:\n" + "\n".join(f"  - {f}" for f in failures))


@dataclass(frozen=True)
class BarExpectations:
    min_rows: int
    as_of: pd.Timestamp
    max_staleness_days: int
    columns: tuple[str, ...] = field(default=("timestamp", *OHLCV))


def build_suite(spec: BarExpectations):
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name="ohlcv_bars")
    add = suite.add_expectation
    for col in spec.columns:
        add(gxe.ExpectColumnToExist(column=col))
        add(gxe.ExpectColumnValuesToNotBeNull(column=col))
    for col in ("open", "high", "low", "close"):
        add(gxe.ExpectColumnValuesToBeBetween(column=col, min_value=0, strict_min=True))
    add(gxe.ExpectColumnValuesToBeBetween(column="volume", min_value=0))
    for col in ("open", "close"):
        add(gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="high", column_B=col, or_equal=True))
        add(gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=col, column_B="low", or_equal=True))
    add(gxe.ExpectColumnValuesToBeUnique(column="timestamp"))
    add(gxe.ExpectColumnValuesToBeIncreasing(column="timestamp", strictly=True))
    add(gxe.ExpectTableRowCountToBeBetween(min_value=spec.min_rows))
    oldest_allowed = spec.as_of.normalize() - pd.Timedelta(days=spec.max_staleness_days)
    add(gxe.ExpectColumnMaxToBeBetween(column="timestamp", min_value=oldest_allowed))
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
        batch_parameters={"dataframe": bars},
        result_format={"result_format": "COMPLETE", "partial_unexpected_count": 3},
    )
    return result.to_json_dict()


def validate_bars(bars: pd.DataFrame, spec: BarExpectations) -> dict[str, Any]:
    """Validate ``bars``; return the GX result or raise ``BarValidationError`` naming each failure."""
    result = run_suite(bars, spec)
    failures = [_describe(r, bars) for r in result["results"] if not r["success"]]
    if failures:
        raise BarValidationError(failures, result)
    return result


def _describe(r: dict[str, Any], bars: pd.DataFrame) -> str:
    config = r["expectation_config"]
    kwargs = {k: v for k, v in config["kwargs"].items() if k not in ("batch_id",)}
    what = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    res = r.get("result") or {}
    detail = ""
    if res.get("unexpected_count"):
        detail = f": {res['unexpected_count']} bad rows"
        index = (res.get("partial_unexpected_index_list") or [None])[0]
        if index is not None and index in bars.index:
            detail += f", e.g. row {index}: {bars.loc[index].to_dict()}"
    elif "observed_value" in res:
        detail = f": observed {res['observed_value']}"
    if r.get("exception_info", {}).get("raised_exception"):
        detail += f" (error: {r['exception_info'].get('exception_message')})"
    return f"{config['type']}({what}){detail}"


def _quiet_progress_bars(context) -> None:
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # noqa: BLE001 - cosmetic only
        log.debug("could not disable GX progress bars", exc_info=True)
