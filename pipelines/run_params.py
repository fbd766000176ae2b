"""RunParams: the knobs of a run, one definition for the DAG's trigger Params, the CLI's flags and
their validation (bounds, choices, defaults). Light to import: DAG files build their Params from it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipelines.config import ConfigError, ModelFamily, Objective, SearchMode
from pipelines.terms import CONFIG_NAME_PATTERN


class RunParams(BaseModel):
    """The knobs of a run: the DAG's trigger Params and the CLI's flags, validated alike."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_trials: int = Field(20, ge=1, le=10_000)
    timeout_minutes: float = Field(30, gt=0, le=24 * 60)
    objective: Objective = "sharpe"
    mode: SearchMode = "bayesian"
    model_family: ModelFamily | None = None
    data: str = Field("sample:sp500", min_length=1, max_length=500)
    # bars up to this date (the whole day) or instant (a time of day; naive means UTC)
    as_of: datetime | date | None = None
    # a config's name under RETUNE_HOME/configs, never a path: params may come from a trigger form
    config: str | None = Field(None, pattern=CONFIG_NAME_PATTERN)
    review_timeout_minutes: int = Field(24 * 60, ge=1, le=7 * 24 * 60)
    # search worker processes sharing the run's study (more than one needs a PostgreSQL store)
    workers: int = Field(1, ge=1, le=16)

    @field_validator("as_of", mode="before")
    @classmethod
    def _parse_as_of(cls, value: Any) -> Any:
        """``YYYY-MM-DD`` stays a date (the whole day); anything with a time is an instant in UTC."""
        if isinstance(value, str):
            text = value.strip()
            if len(text) == 10:
                return date.fromisoformat(text)
            try:
                value = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(f"{value!r} is not YYYY-MM-DD or an ISO date and time") from None
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value

    @field_validator("data")
    @classmethod
    def _check_data(cls, value: str) -> str:
        from pipelines.data.sources import DataSource, DataSourceError  # pandas: not at DAG parse time

        try:
            DataSource.parse(value).check()  # a csv/parquet path must stay in RETUNE_DATA_DIR
        except DataSourceError as exc:
            raise ValueError(str(exc)) from None
        return value


def parse_params(raw: dict[str, Any]) -> RunParams:
    """Validate user-supplied params; the error names each bad field."""
    clean = {k: v for k, v in raw.items() if v is not None and v != ""}
    try:
        return RunParams(**clean)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigError(f"invalid run parameters: {problems}") from None
