"""Typed configuration: the seed search-space format, fixed hyperparameters and pipeline settings.

A config file is the format users already write::

    {"search_space": {"lr": {"type": "loguniform", "low": 1e-5, "high": 1e-2}, ...},
     "epochs": 5, "fees": 0.0005, ...}

Every key other than ``search_space`` is a fixed value for a field of ``PipelineConfig``;
a searched name overrides the fixed value trial by trial.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from pipelines.calendar import (
    FREQUENCY_PATTERN,
    SPAN_PATTERN,
    BarCalendar,
    BarFrequency,
    CalendarError,
    SessionName,
)
from pipelines.calendar_inference import calendar_of
from pipelines.param_specs import (
    Categorical,
    FloatRange,
    FrozenModel,
    IntRange,
    ParamSpec,
)
from pipelines.terms import MODEL_KEY_PATTERN

# the built-in families (models.families.BUILTIN): what trigger Params and the CLI offer; a config
# file may also name a family by import path (module.path:ClassName)
ModelFamily = Literal["lstm", "transformer", "linear", "moe_transformer", "mamba"]
Objective = Literal["sharpe", "return", "sortino", "calmar"]
SearchMode = Literal["bayesian", "random", "grid"]
BayesianSampler = Literal["tpe", "cmaes", "gp"]
PrunerName = Literal["median", "hyperband", "wilcoxon", "none"]
BenchmarkName = Literal["buy_and_hold", "flat"]  # what a strategy gets for free (search/benchmark.py)
# Strategy parameters act on a model's predictions, not on its training: every value of them
# is scored on one set of predictions in one vectorized backtest instead of being searched.
STRATEGY_PARAMS = ("entry_threshold", "long_short")

DEFAULTS_DIR = Path(__file__).parent / "defaults"
REVIEWER_PATTERN = r"^(role:)?[A-Za-z0-9_.@+-]{1,100}$"  # an Airflow user id, or role:NAME
MIN_TRAIN_BARS = 200  # the least a model trains on before the first walk-forward fold


class ConfigError(ValueError):
    """A configuration problem, with a message that names the offending key."""


class HyperParams(FrozenModel):
    """Model and strategy hyperparameters: the values a trial (or production) uses.

    The fields below are common to every family; a family's own hyperparameters (e.g. nhead,
    n_experts, d_state) and the training options (optimizer, lr_schedule, ...) are extra fields,
    checked against the family's declared schema (models.families, models.training_options).
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    # a built-in name or module.path:ClassName; 40: the store's family column
    model_family: str = Field("lstm", max_length=40)
    lr: float = Field(1e-3, gt=0, lt=1)
    hidden_size: int = Field(32, ge=2, le=1024)
    num_layers: int = Field(1, ge=1, le=8)
    dropout: float = Field(0.0, ge=0, lt=1)
    seq_len: int = Field(20, ge=2, le=512)
    epochs: int = Field(5, ge=1, le=1000)
    batch_size: int = Field(64, ge=1, le=8192)
    entry_threshold: float = Field(0.0, ge=0, le=5)
    long_short: bool = False

    @field_validator("model_family")
    @classmethod
    def _check_family(cls, name: str) -> str:
        from models.families import get_family

        get_family(name)  # raises with the known names
        return name

    @model_validator(mode="after")
    def _check_extras(self) -> HyperParams:
        extra = self.__pydantic_extra__ or {}
        if extra:
            extra.update(family_values(self.model_family, extra))
        return self


def family_schema(family: str) -> dict[str, Any]:
    """The hyperparameters ``family`` accepts beyond HyperParams' fields: its own and the
    training options, by name."""
    from models.families import get_family
    from models.training_options import TRAINING_SCHEMA

    return {p.name: p for p in (*get_family(family).schema, *TRAINING_SCHEMA)}


def family_values(family: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` checked against ``family``'s schema; an unknown name is refused with every name
    the family accepts."""
    from models.families import check_values

    return check_values(
        f"model family {family!r}", family_schema(family).values(), values, HyperParams.model_fields
    )


def family_aliases(family: str) -> dict[str, str]:
    """The names users' spaces give common fields (d_model, n_layers, drop_rate, seq_length)."""
    from models.families import get_family

    return {**COMMON_ALIASES, **get_family(family).aliases}


COMMON_ALIASES = {"seq_length": "seq_len", "sequence_length": "seq_len"}


class PipelineConfig(FrozenModel):
    """Everything a run needs besides its data: fixed hyperparameters, search space and settings."""

    # A config that leaves it out gets the data source's instrument in its RunContext
    # (pipelines.context.with_model_key); this default only serves configs used without a run.
    model_key: str = Field("spx_daily", pattern=MODEL_KEY_PATTERN)
    hyperparams: HyperParams = HyperParams()
    search_space: dict[str, ParamSpec] = Field(default_factory=dict)
    # the bar calendar (pipelines/calendar.py): what a bar is and how many make a year
    bar_frequency: str | None = Field(None, pattern=FREQUENCY_PATTERN)  # 1h, 15min, 1d; None: inferred
    session: SessionName = "auto"  # 24x7 (crypto), 24x5 (FX), xnys (equities); auto: inferred
    bars_per_year: float | None = Field(None, gt=0, le=1_000_000)  # overrides the calendar's count
    bar_tolerance: float = Field(0.01, ge=0, le=0.5)  # share of steps between bars off the grid
    # deprecated: trading days a year; the session says it (24x7: 365, 24x5: 260, xnys: 252)
    year_days: int | None = None
    # data / validation
    window_bars: int = Field(1500, ge=100)
    # sizes as time spans (e.g. 3mo, 5d), turned into bars by the run's bar calendar; set, they
    # replace window_bars, val_bars and holdout_bars
    window: str | None = Field(None, pattern=SPAN_PATTERN)
    val_window: str | None = Field(None, pattern=SPAN_PATTERN)
    holdout_window: str | None = Field(None, pattern=SPAN_PATTERN)
    recent_window: str = Field("3mo", pattern=SPAN_PATTERN)  # the narrowing rules' recent regime
    # the last bar may be this many bars old (in the calendar's time, plus a weekend); null: off
    max_staleness_bars: int | None = Field(5, ge=0)
    # what a trader fears in bars; null turns a check off (e.g. no volume in FX quotes)
    max_abs_log_return: float | None = Field(1.0, gt=0)  # one bar's |ln(close/prev)|: 10x is 2.3
    max_jump_sigmas: float | None = Field(25.0, gt=0)  # |return| in robust std devs of the window
    max_zero_volume_bars: int | None = Field(3, ge=0)  # zero-volume bars in a row
    max_repeated_closes: int | None = Field(5, ge=1)  # bars in a row whose close did not change
    # walk-forward search
    n_folds: int = Field(3, ge=1, le=20)
    val_bars: int = Field(120, ge=10)
    embargo_bars: int = Field(0, ge=0, le=250)  # extra gap after the purge, for serial correlation
    sampler: BayesianSampler = "tpe"  # the sampler of mode=bayesian
    pruner: PrunerName = "wilcoxon"  # paired: prunes only a trial significantly worse than the best
    two_stage: bool = False  # coarse search, then a fine one around the coarse best
    strategy_grid_points: int = Field(6, ge=1, le=50)  # entry thresholds tried per prediction set
    # what the models learn: the next bar's return, or that return over the bar's trailing 20-bar
    # volatility (``vol_20``), so that a calm bar's drift weighs as much as a storm bar's noise
    target: Literal["return", "volatility_scaled"] = "return"
    # a trial's score measures the configuration, not one seed: it trains seeds_per_trial
    # networks from the same seeds in every trial and trades their mean (the deployed model too)
    seeds_per_trial: int = Field(1, ge=1, le=32)
    # each fold trains until its newest inner_val_fraction of training windows stops improving
    # for early_stopping_patience epochs (epochs is the budget); 0: every window, every epoch
    # (the deployed model too). bench/early_stopping_scan.py: at a few percent R2 the next-bar
    # loss of an inner split stops after an epoch or two, short of what trades best
    inner_val_fraction: float = Field(0.2, ge=0, lt=0.5)
    early_stopping_patience: int = Field(3, ge=1, le=100)
    # the likely best, not the luckiest: the top race_top_k re-scored on race_seeds fresh seeds
    race_top_k: int = Field(3, ge=1, le=20)
    race_seeds: int = Field(2, ge=0, le=10)  # 0: no race, the raw best is selected
    # a reference every search runs (and that may win): ridge on the newest bar's features
    baseline_family: Literal["linear"] | None = "linear"
    narrowing_rules: tuple[str, ...] | None = None  # rule names in the order to apply; None: default
    # selection statistics, the gate and who decides
    promotion_policy: Literal["review", "auto", "off"] = "review"  # review: a person approves
    # who may approve under policy review: Airflow user ids, or "role:NAME" (the simple auth
    # manager's users of that role); empty: any Airflow user allowed to answer the review task.
    # The user who triggered the run never approves it (four-eyes).
    reviewers: tuple[Annotated[str, StringConstraints(pattern=REVIEWER_PATTERN)], ...] = ()
    approvals_required: int = Field(1, ge=1, le=2)  # 2: two distinct reviewers must approve
    # where a scheduled run reads its bars (a manual trigger names them in the `data` Param)
    data_source: str | None = Field(None, max_length=300)
    dsr_threshold: float = Field(0.95, ge=0, le=1)
    # skill is measured against what is free: holding the instrument, or cash for neutral books
    benchmark: BenchmarkName = "buy_and_hold"
    benchmark_alpha: float = Field(0.05, gt=0, le=1)  # walk-forward paired test vs it (1: off)
    # on the holdout: refuse only an alpha below 0 at 1 - this level (120 bars cannot show more;
    # 0.5: any negative alpha refuses; 1: off). bench: planted_promotions
    holdout_benchmark_alpha: float = Field(0.9, gt=0, le=1)
    max_drawdown_limit: float = Field(0.35, gt=0, le=1)  # worst fold drawdown the gate accepts
    pbo_splits: int = Field(8, ge=2, le=16, multiple_of=2)
    fees: float = Field(0.0005, ge=0, lt=0.1)
    slippage: float = Field(0.0, ge=0, lt=0.1)
    min_trades: int = Field(1, ge=0)
    # fine-tuning of the deployed model
    finetune_bars: int = Field(500, ge=50)
    finetune_lr_ratio: float = Field(0.1, gt=0, le=1)
    finetune_epochs: int = Field(10, ge=1)
    finetune_patience: int = Field(3, ge=1)
    # one weight per predicted horizon (next bar, the one after, ...); trading uses the first
    horizon_loss_weights: tuple[float, ...] = Field((1.0,), min_length=1, max_length=10)
    freeze_backbone_layers: int = Field(0, ge=0, le=8)  # first N layers frozen while fine-tuning
    # rules that act during the final training and fine-tune (models/adaptive_training);
    # the search's trials train without them, so every trial is scored by the same procedure
    adaptive_rules: tuple[str, ...] = ()
    finetune_replay_fraction: float = Field(0.25, ge=0, le=4)  # older windows replayed, per new one
    # champion vs challenger on the most recent bars, which search and fine-tune never see
    holdout_bars: int = Field(120, ge=20)
    holdout_folds: int = Field(4, ge=1, le=20)
    champion_alpha: float = Field(0.2, gt=0, le=1)  # one-sided paired test: challenger better
    champion_margin: float = 0.0  # holdout objective the challenger must add over the champion
    seed: int = 42

    @model_validator(mode="before")
    @classmethod
    def _replaced_keys(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "max_staleness_days" in raw:
            raise ValueError(
                "max_staleness_days: replaced by max_staleness_bars (bars of the bar calendar, plus "
                "the session's weekend; default 5), so intraday data is held to hours, not days"
            )
        return raw

    @field_validator("bar_frequency")
    @classmethod
    def _check_frequency(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(BarFrequency.parse(value))
        except CalendarError as exc:
            raise ValueError(str(exc).removeprefix(f"bar_frequency {value!r}: ")) from None

    @field_validator("year_days")
    @classmethod
    def _check_year_days(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= 366:
            raise ValueError(
                f"{value} is not a number of trading days a year (1..366); bars a year now follow "
                "the bar calendar: set bar_frequency (e.g. 1h) and session (24x7: 365 days, 24x5: "
                "260, xnys: 252), e.g. bar_frequency: 1h with session: 24x5 is 6240 bars a year, "
                f"or set bars_per_year: {value}"
            )
        if value is not None:
            import warnings

            warnings.warn(
                "year_days is deprecated: set session (24x7, 24x5, xnys) or bars_per_year",
                DeprecationWarning,
                stacklevel=2,
            )
        return value

    def model_families(self) -> tuple[str, ...]:
        """The model families a search may choose: the searched ones, or the fixed one."""
        spec = self.search_space.get("model_family")
        chosen = spec.choices if isinstance(spec, Categorical) else None
        return tuple(chosen or (self.hyperparams.model_family,))

    @model_validator(mode="after")
    def _check_space(self) -> PipelineConfig:
        families = list(self.model_families())
        for name in self.search_space:
            # a name is valid when a family that may be chosen accepts it
            takers = [f for f in families if name in HyperParams.model_fields or name in family_schema(f)]
            if not takers:
                known = sorted({*HyperParams.model_fields, *(n for f in families for n in family_schema(f))})
                raise ValueError(
                    f"search_space.{name}: not a hyperparameter of model family "
                    f"{' or '.join(map(repr, families))} (known: {', '.join(known)})"
                )
            for value in _extremes(self.search_space[name]):
                try:
                    HyperParams(**{"model_family": takers[0], name: value})
                except ValidationError as exc:
                    reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
                    raise ValueError(f"search_space.{name}: {value!r} is out of range ({reason})") from None
        return self

    @field_validator("adaptive_rules")
    @classmethod
    def _check_adaptive_rules(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        from models.adaptive_training import adaptive_rules

        adaptive_rules(names)
        return names

    @field_validator("horizon_loss_weights")
    @classmethod
    def _check_weights(cls, weights: tuple[float, ...]) -> tuple[float, ...]:
        if weights[0] <= 0 or any(w < 0 for w in weights):
            raise ValueError("weights must be >= 0, and the next bar's (the first) > 0: it is what trades")
        return weights

    def calendar(self, timestamps: Any = None) -> BarCalendar:
        """The bar calendar: this config's settings, what they leave open inferred from the bars'
        ``timestamps`` (a run's config has it resolved by the validate step)."""
        return calendar_of(self, timestamps)

    def with_calendar(self, calendar: BarCalendar) -> PipelineConfig:
        """This config with its bar calendar resolved (frequency and session filled in) and the
        sizes given in time (``window``, ``val_window``, ``holdout_window``) turned into bars."""
        update: dict[str, Any] = {"bar_frequency": str(calendar.frequency), "session": calendar.session.name}
        for span_key, bars_key in (
            ("window", "window_bars"),
            ("val_window", "val_bars"),
            ("holdout_window", "holdout_bars"),
        ):
            span = getattr(self, span_key)
            if span is not None:
                minimum = type(self).model_fields[bars_key].metadata[0].ge
                update[bars_key] = max(calendar.bars_in(span), minimum)
        return self.model_copy(update=update)

    def annualization(self, timestamps: Any = None) -> float:
        """Bars a year, the factor every annualized metric uses (see ``calendar``)."""
        return self.calendar(timestamps).bars_per_year

    @property
    def target_per_volatility(self) -> bool:
        """Whether new models learn each return over its bar's volatility (``target``)."""
        return self.target == "volatility_scaled"

    @property
    def label_horizon(self) -> int:
        """Bars a training label looks ahead: the purge gap between training and validation."""
        return len(self.horizon_loss_weights)

    @property
    def min_history_bars(self) -> int:
        """Bars needed for the walk-forward folds plus a minimal training set."""
        return sum(bars for _, bars in self.min_history_terms)

    @property
    def min_history_terms(self) -> tuple[tuple[str, int], ...]:
        """What ``min_history_bars`` is made of, in words a user can act on."""
        terms = [(f"{self.n_folds} folds × {self.val_bars}", self.n_folds * self.val_bars)]
        if self.embargo_bars:
            terms.append((f"embargo {self.embargo_bars}", self.embargo_bars))
        terms += [
            (f"holdout {self.holdout_bars}", self.holdout_bars),
            (f"{MIN_TRAIN_BARS} training", MIN_TRAIN_BARS),
        ]
        return tuple(terms)


def _extremes(spec: FloatRange | IntRange | Categorical) -> tuple[Any, ...]:
    """The values of a spec that must all be valid hyperparameter values."""
    return spec.choices if isinstance(spec, Categorical) else (spec.low, spec.high)
