"""Shared pieces of the live-inference benchmarks: a predictor on real daily bars."""

from __future__ import annotations

import pandas as pd
import torch

from models.networks import build_network
from pipelines.config import HyperParams
from pipelines.data.sources import load_bars
from pipelines.features.core import FeatureScaler, compute_features, next_return
from pipelines.predictor import LivePredictor
from pipelines.training.trainer import architecture

# production-sized: the weekly search's largest LSTM and Transformer
FAMILIES = {
    "lstm": HyperParams(model_family="lstm", hidden_size=64, num_layers=2, seq_len=30),
    "transformer": HyperParams(model_family="transformer", hidden_size=64, num_layers=2, seq_len=30),
    # the other families at the same width, depth and window (examples/ shows their spaces)
    "moe_transformer": HyperParams(
        model_family="moe_transformer", hidden_size=64, num_layers=2, seq_len=30, n_experts=4, top_k=2
    ),
    "mamba": HyperParams(
        model_family="mamba",
        hidden_size=64,
        num_layers=2,
        seq_len=30,
        bidirectional=True,
        patch_len=4,
        stride_ratio=0.5,
    ),
}


def sp500_bars() -> pd.DataFrame:
    return load_bars("sample:sp500")


def predictor_for(
    family: str, bars: pd.DataFrame, members: int = 1, hidden_size: int | None = None
) -> LivePredictor:
    """Weights do not change the cost of inference: a seeded, untrained network (or seed
    ensemble of ``members``, of width ``hidden_size`` instead of the family's) will do."""
    params = FAMILIES[family]
    if hidden_size is not None:
        params = params.model_copy(update={"hidden_size": hidden_size})
    scaler = FeatureScaler.fit(compute_features(bars), next_return(bars))
    torch.manual_seed(0)
    network = build_network(architecture(params, len(scaler.features), members=members))
    return LivePredictor("bench", params, scaler, network)
