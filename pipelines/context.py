"""RunContext: everything one run needs, built the same way from Airflow, the CLI or a test."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipelines.calendar import DAG_NAMES, BarCalendar, DagName
from pipelines.calendar_inference import calendar_of
from pipelines.config import ConfigError, PipelineConfig
from pipelines.config_files import default_config, load_config
from pipelines.data.sources import DataSource, DataSourceError
from pipelines.run_params import RunParams, parse_params
from pipelines.runfolder import CALENDAR_FILE, RunFolder
from pipelines.settings import Settings, load_settings

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# A run id a user names (``retune run --run-id``) is used as given, so it must already be safe
# as a folder and study name: it is refused, never rewritten, when it is not.
RUN_ID_PATTERN = re.compile(r"^(?!.*\.\.)[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,126}[A-Za-z0-9])?$")


def check_run_id(value: str) -> str:
    """Refuse a user-given run id that ``safe_run_id`` would have to rewrite."""
    if not RUN_ID_PATTERN.match(value):
        raise ConfigError(
            f"run id {value!r} refused: use 1-128 letters, digits, '_', '.' or '-', starting and "
            "ending with a letter or digit, without '..'"
        )
    return value


def safe_run_id(dag: str, raw_run_id: str) -> str:
    """A run id usable as a folder and study name, unique per DAG.

    Airflow's own run ids (``manual__2026-01-01T00:00:00+00:00``) carry ``:`` and ``+``; they
    are rewritten here. Ids a user types are checked with ``check_run_id`` instead.
    """
    return f"{dag}__{_UNSAFE.sub('_', raw_run_id).strip('_')}"[:190]


def with_model_key(config: PipelineConfig, data: str) -> PipelineConfig:
    """The config with its model key: the one it names, else the data source's instrument.

    The bundled defaults name none, so an FX file and a crypto file run as two model keys
    (``eurusd``, ``btcusd``) instead of fine-tuning one shared model.
    """
    if "model_key" in config.model_fields_set:  # a config that names its key is authoritative
        return config
    try:
        key = DataSource.parse(data).instrument
    except DataSourceError as exc:
        raise ConfigError(str(exc)) from None
    return config.model_copy(update={"model_key": key})


def with_resolved_calendar(config: PipelineConfig, path: Path) -> PipelineConfig:
    """The config with the bar calendar the validate step resolved (``path``) filled in, and its
    sizes given in time turned into bars with it (``PipelineConfig.with_calendar``). Unchanged
    before validate."""
    if not path.is_file():
        return config
    resolved = json.loads(path.read_text())
    settings = {"bar_frequency": resolved["bar_frequency"], "session": resolved["session"]}
    return config.with_calendar(calendar_of(config.model_copy(update=settings)))


@dataclass(frozen=True)
class RunContext:
    run_id: str
    dag: DagName
    as_of: datetime
    params: RunParams
    config: PipelineConfig
    settings: Settings = field(default_factory=load_settings)

    @classmethod
    def create(
        cls,
        dag: str,
        raw_run_id: str,
        params: dict[str, Any] | RunParams,
        logical_date: datetime | None = None,
        settings: Settings | None = None,
        config_path: Path | None = None,
    ) -> RunContext:
        """Build a context; ``as_of`` is the explicit param, else the logical date, else now.

        The config is ``config_path`` (a file the CLI user named), else the named config of the
        params, else the bundled default for the DAG.
        """
        if dag not in DAG_NAMES:
            raise ConfigError(f"unknown dag {dag!r} ({', '.join(DAG_NAMES)})")
        run_params = params if isinstance(params, RunParams) else parse_params(params)
        settings = settings or load_settings()
        if config_path is not None:
            config = load_config(config_path)
        elif run_params.config:
            config = load_config(settings.config_file(run_params.config))
        else:
            config = default_config(dag)
        config = with_model_key(config, run_params.data)
        if run_params.model_family:
            hyper = config.hyperparams.model_copy(update={"model_family": run_params.model_family})
            config = config.model_copy(update={"hyperparams": hyper})
        if isinstance(run_params.as_of, datetime):
            as_of = run_params.as_of
        elif run_params.as_of is not None:
            as_of = datetime.combine(run_params.as_of, datetime.min.time(), tzinfo=UTC)
        else:
            as_of = logical_date or datetime.now(UTC)
        run_id = safe_run_id(dag, raw_run_id)
        config = with_resolved_calendar(config, settings.runs_dir / run_id / CALENDAR_FILE)
        return cls(
            run_id=run_id,
            dag=dag,  # type: ignore[arg-type]
            as_of=as_of,
            params=run_params,
            config=config,
            settings=settings,
        )

    @property
    def data_until(self) -> datetime:
        """The newest bar time a run may read (inclusive): the end of an ``as_of`` date, else
        the ``as_of`` instant (an hourly run reads the bars up to its hour, not its day)."""
        whole_day = self.params.as_of is not None and not isinstance(self.params.as_of, datetime)
        if whole_day:
            return self.as_of + timedelta(days=1) - timedelta(microseconds=1)
        return self.as_of

    def with_run_calendar(self) -> RunContext:
        """This context with the bar calendar its validate step wrote (if it has run): a context
        built before validate (``retune run``: one context for the whole chain) picks it up
        here, before each step; one built after it has it from ``create`` already."""
        config = with_resolved_calendar(self.config, self.run_dir / CALENDAR_FILE)
        return self if config == self.config else replace(self, config=config)

    @property
    def calendar(self) -> BarCalendar:
        """The run's bar calendar, as the validate step resolved it from the config and the bars."""
        return calendar_of(self.config)

    @property
    def run_dir(self) -> Path:
        return self.settings.runs_dir / self.run_id

    @property
    def folder(self) -> RunFolder:
        """The run folder's typed records: how steps hand results to later steps."""
        return RunFolder(self.run_dir)

    @property
    def report_dir(self) -> Path:
        return self.settings.reports_dir / self.run_id

    @property
    def model_key(self) -> str:
        return self.config.model_key
