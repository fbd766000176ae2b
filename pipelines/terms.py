"""The words steps, the store and the UI share: trial attributes, config states, audit actions,
run states and decisions. Each is a ``StrEnum``, so a value equals its string (what the store and
Optuna hold) while code names it once; a typo is an AttributeError, not a silent mismatch."""

from __future__ import annotations

from enum import StrEnum

# A config's name under RETUNE_HOME/configs, never a path: names may come from a trigger form.
CONFIG_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
MODEL_KEY_PATTERN = r"^[A-Za-z0-9_]{1,64}$"  # a model key: one production entry, one study lineage


class TrialAttr(StrEnum):
    """Optuna user attributes a trial (or the study) carries between search, outputs and narrowing."""

    TRAIN_FAMILY = "train_family"  # trains this family whatever the sampled params say
    BASELINE = "baseline"  # the linear reference trial
    INCUMBENT = "incumbent"  # production's params, queued as trial 0
    CARRIED_OVER_FROM = "carried_over_from"  # a previous study's trial number
    MODEL_FAMILY = "model_family"
    OBJECTIVE = "objective"
    STRATEGY = "strategy"  # the best strategy variant (entry threshold, side)
    PENALTIES = "penalties"  # why folds got the finite penalty
    N_VARIANTS = "n_variants"
    N_EFFECTIVE_VARIANTS = "n_effective_variants"
    FOLD_RETURNS = "fold_returns"
    FOLD_METRICS = "fold_metrics"
    STAGE = "stage"  # coarse or fine (two-stage search)
    WORKER = "worker"
    EPOCHS_TRAINED = "epochs_trained"
    N_CARRIED_OVER = "n_carried_over"
    SEED_VALUES = "seed_values"  # the objective of each seed alone
    HALF_VALUES = "half_values"  # the objective of two disjoint halves of the seeds


class RunState(StrEnum):
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"


class ConfigState(StrEnum):
    """A config version's life: proposed, then active (or refused), then replaced."""

    PENDING = "pending"
    ACTIVE = "active"
    REJECTED = "rejected"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"
    ROLLED_BACK = "rolled_back"


class AuditAction(StrEnum):
    PROPOSE = "propose"
    PROMOTE = "promote"
    APPROVE = "approve"
    REJECT = "reject"
    TIMEOUT = "timeout"
    ROLLBACK = "rollback"
    # the review in Airflow: an answer as Airflow accepted it (recorded by the api-server), then
    # what the review task made of it (one approval of several, or refused: four-eyes)
    ANSWERED_APPROVE = "answered_approve"
    ANSWERED_REJECT = "answered_reject"
    APPROVE_PARTIAL = "approve_partial"
    REFUSED = "refused"


class Decision(StrEnum):
    """What the gate decides; the run's final decision is one of these or ``kept: <why>``."""

    PROMOTE = "promote"
    AWAITING_APPROVAL = "awaiting approval"
    PROMOTED = "promoted"


KEPT = "kept: "  # the prefix of every decision that leaves production unchanged
