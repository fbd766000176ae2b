"""The fine-tune decision: when the deployed model's weights may be reused, and why not otherwise.

Decided from the parent's registry record and the chosen architecture alone: nothing is trained.
"""

from __future__ import annotations

import pytest

from pipelines.config import HyperParams
from pipelines.context import RunContext
from pipelines.features.core import feature_fingerprint
from pipelines.store.tables import ModelVersion
from pipelines.training.lifecycle import _why_not_finetune
from pipelines.training.trainer import architecture

N_FEATURES = 7
PARAMS = HyperParams(hidden_size=16, num_layers=2, seq_len=10)


def deployed(params: HyperParams = PARAMS, fingerprint: str | None = None, **metrics) -> ModelVersion:
    """A registry row as the train step writes it; only what the decision reads matters."""
    return ModelVersion(
        model_key="k",
        version=1,
        family=params.model_family,
        params=params.model_dump(),
        feature_fingerprint=fingerprint or feature_fingerprint(),
        checkpoint_path="unused.pt",
        sha256="0" * 64,
        trained_how="scratch",
        metrics=metrics,
        source_run="r0",
    )


def ctx(dag: str = "daily") -> RunContext:
    return RunContext.create(dag, "finetune-decision", {})


def spec(params: HyperParams = PARAMS, horizons: int = 1, members: int = 1):
    return architecture(params, N_FEATURES, horizons, members)


def test_without_a_deployed_model_it_trains_from_scratch():
    assert "no deployed model" in _why_not_finetune(ctx(), None, spec())


def test_weekly_runs_retrain_fully_even_when_the_model_fits():
    assert _why_not_finetune(ctx("weekly"), deployed(), spec()) == "weekly runs retrain fully"


def test_a_changed_feature_definition_forbids_reusing_the_weights():
    assert "feature definition changed" in _why_not_finetune(ctx(), deployed(fingerprint="f" * 64), spec())


@pytest.mark.parametrize(
    ("chosen", "changed"),
    [
        (spec(PARAMS.model_copy(update={"hidden_size": 32})), "hidden_size"),
        (spec(PARAMS.model_copy(update={"num_layers": 1})), "num_layers"),
        (spec(PARAMS.model_copy(update={"seq_len": 20})), "seq_len"),
        (spec(horizons=3), "n_outputs"),
        (spec(members=4), "members"),
    ],
)
def test_a_different_architecture_is_named_in_the_reason(chosen, changed):
    # n_features is not compared here: the feature fingerprint above already covers it
    reason = _why_not_finetune(ctx(), deployed(), chosen)
    assert reason is not None and "architecture differs" in reason and changed in reason


def test_the_deployed_models_horizons_and_members_come_from_its_metrics():
    parent = deployed(horizon_loss_weights=[1.0, 0.5, 0.25], members=4)
    assert _why_not_finetune(ctx(), parent, spec(horizons=3, members=4)) is None
    assert "n_outputs" in _why_not_finetune(ctx(), parent, spec(horizons=1, members=4))


def test_a_compatible_model_is_fine_tuned():
    # dropout and the learning rate do not change weight shapes
    chosen = spec(PARAMS.model_copy(update={"dropout": 0.3, "lr": 0.01}))
    assert _why_not_finetune(ctx(), deployed(), chosen) is None
