"""The validate step's service: load the bars up to the run's cutoff, resolve the bar calendar
and check the bars with the Great Expectations suite; keep what later steps read."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from pipelines.artifacts import dump_json
from pipelines.calendar import CalendarError
from pipelines.calendar_inference import calendar_of
from pipelines.context import RunContext
from pipelines.data.sources import load_bars
from pipelines.runfolder import CALENDAR_FILE, ValidationRecord
from pipelines.store.production_file import sync_production_file
from pipelines.store.repository import Repository
from pipelines.validation.suite import BarExpectations, BarValidationError, validate_bars

log = logging.getLogger(__name__)


def validate_run(ctx: RunContext, repo: Repository) -> dict[str, Any]:
    """Start the run's record and validate its bars; on success keep ``bars.parquet`` and the
    resolved calendar in the run folder."""
    sync_production_file(repo, ctx.settings.production_config)  # repairs a write an earlier run missed
    repo.start_run(
        ctx.run_id,
        dag_id=ctx.dag,
        model_key=ctx.model_key,
        as_of=ctx.as_of,
        data_source=ctx.params.data,
        params=ctx.params.model_dump(mode="json"),
    )
    until = pd.Timestamp(ctx.data_until).tz_convert(None)
    bars = load_bars(ctx.params.data, until, db_url=ctx.settings.db_url)
    # the bar calendar (frequency, session): the config's, the rest inferred from the bars
    calendar, calendar_problem = None, None
    try:
        calendar = calendar_of(ctx.config, bars["timestamp"])
    except CalendarError as exc:
        calendar_problem = str(exc)
    # the history needed counts the sizes given in time as bars of this calendar
    config = ctx.config.with_calendar(calendar) if calendar is not None else ctx.config
    spec = BarExpectations.from_config(config, as_of=until, calendar=calendar)
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    (ctx.run_dir / CALENDAR_FILE).unlink(missing_ok=True)
    try:
        gx_result = validate_bars(bars, spec)
    except BarValidationError as exc:
        ctx.folder.write(ValidationRecord(**exc.result))
        if calendar_problem and not exc.missing_columns:
            raise BarValidationError([*exc.failures, calendar_problem], exc.result) from None
        raise
    ctx.folder.write(ValidationRecord(**gx_result))
    if calendar is None:
        raise BarValidationError([str(calendar_problem)], gx_result)
    bars.to_parquet(ctx.folder.bars)
    dump_json(ctx.run_dir / CALENDAR_FILE, calendar.to_dict())  # later steps' configs read it
    log.info("validate: %s", calendar.describe())
    stats = gx_result.get("statistics", {})
    return {
        "n_bars": len(bars),
        "first_bar": str(bars["timestamp"].iloc[0]),
        "last_bar": str(bars["timestamp"].iloc[-1]),
        "calendar": calendar.to_dict(),
        "expectations": stats.get("evaluated_expectations"),
        "successful": stats.get("successful_expectations"),
    }
