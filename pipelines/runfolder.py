"""The run folder: the typed interface between steps.

Each step writes one small JSON record into ``<RETUNE_HOME>/runs/<run_id>/`` and later steps
(the report, promotion, the review task, ``retune reproduce``) read it back. Every record is a
pydantic model with its file name, written and read only through ``RunFolder``, so a renamed or
missing key fails where it is read, with the file's name, instead of as a ``KeyError`` deep in
another step. Records allow extra keys: a run folder written by an older version still reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from pipelines.artifacts import dump_json, load_json

CALENDAR_FILE = "calendar.json"  # the validate step's resolved bar calendar
BARS_FILE = "bars.parquet"  # the validated bars, up to the run's cutoff
FEATURES_FILE = "features.parquet"  # their features, and the label column ``next_return``


class StepRecord(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    FILE: ClassVar[str]


class ValidationRecord(StepRecord):
    """The Great Expectations result of the validate step."""

    FILE: ClassVar[str] = "validation.json"
    success: bool | None = None
    statistics: dict[str, Any] = {}
    results: list[dict[str, Any]] = []


class NarrowingRecord(StepRecord):
    FILE: ClassVar[str] = "narrowing.json"
    after: dict[str, Any]  # the narrowed search space, in the seed format: what the search reads
    before: dict[str, Any] = {}
    firings: list[dict[str, Any]] = []
    evidence: dict[str, Any] = {}


class SearchSeed(StepRecord):
    """What every search worker (and a retry) must see alike: recorded once by prepare."""

    FILE: ClassVar[str] = "search_prepare.json"
    incumbent: dict[str, Any] | None
    previous_study: str | None
    workers: int = 1


class SearchRecord(StepRecord):
    FILE: ClassVar[str] = "search.json"
    study: str
    objective: str
    best_value: float
    best_trial: int
    best_params: dict[str, Any]
    best_fold_metrics: list[dict[str, Any]] = []
    n_trials: int
    n_complete: int
    n_pruned: int
    statistics: dict[str, Any]
    rank_reliability: Any = None

    @property
    def dsr(self) -> float | None:
        return (self.statistics.get("dsr") or {}).get("dsr")

    @property
    def pbo(self) -> float | None:
        return (self.statistics.get("pbo") or {}).get("pbo")


class FinetuneRecord(StepRecord):
    FILE: ClassVar[str] = "finetune.json"
    model_version: int
    trained_how: str | None = None
    history: list[Any] = []


class EvaluationRecord(StepRecord):
    FILE: ClassVar[str] = "evaluation.json"
    holdout: dict[str, Any]
    challenger: dict[str, Any]
    champion: dict[str, Any] | None = None
    benchmark: dict[str, Any] | None = None
    comparison: dict[str, Any]  # challenger_wins, reason, ...
    parity: dict[str, Any]  # passed, max_feature_diff, max_prediction_diff, tolerance, n_bars


class GateRecord(StepRecord):
    FILE: ClassVar[str] = "gate.json"
    policy: str
    passed: bool
    decision: str
    checks: list[dict[str, Any]]


class TrialRecord(BaseModel):
    """The winning trial as the study ran it: enough to run it again and compare."""

    model_config = ConfigDict(frozen=True)
    number: int
    params: dict[str, Any]
    user_attrs: dict[str, Any]  # only those that steer training (the family it trains)
    value: float
    fold_returns_sha256: str


class RunManifest(StepRecord):
    """What it takes to re-derive a run's winner: the data's content hash, the code and library
    versions, the resolved config and search space, and every seed."""

    FILE: ClassVar[str] = "manifest.json"
    run_id: str
    model_key: str
    dag: str
    as_of: str
    data: dict[str, Any]  # source, sha256 of the bars' content, n_bars, first/last bar
    code: dict[str, Any]  # package version, git commit (when known) and whether it was dirty
    environment: dict[str, Any]  # python, platform, library versions
    params: dict[str, Any]  # the run's params (trigger Params / CLI flags)
    config: dict[str, Any]  # the resolved PipelineConfig (bar calendar filled in)
    search_space: dict[str, Any]  # the narrowed space the study searched
    incumbent: dict[str, Any] | None  # production's params then (they shape the strategy grid)
    seeds: dict[str, Any]
    winner: TrialRecord


R = TypeVar("R", bound=StepRecord)


class RunFolderError(RuntimeError):
    """A record is missing or malformed; the message names the file."""


class RunFolder:
    def __init__(self, path: Path) -> None:
        self.path = path

    def file(self, kind: type[StepRecord]) -> Path:
        return self.path / kind.FILE

    def has(self, kind: type[StepRecord]) -> bool:
        return self.file(kind).is_file()

    def write(self, record: StepRecord) -> Path:
        return dump_json(self.file(type(record)), record.model_dump())

    def read(self, kind: type[R]) -> R:
        path = self.file(kind)
        data = load_json(path)  # FileNotFoundError names the file and the step that writes it
        try:
            return kind.model_validate(data)
        except ValidationError as exc:
            raise RunFolderError(f"{path}: not a {kind.__name__}: {exc}") from None

    @property
    def bars(self) -> Path:
        return self.path / BARS_FILE

    @property
    def features(self) -> Path:
        return self.path / FEATURES_FILE
