"""The features step's service: features and labels of the validated bars, computed with the
live-inference code and kept in the run folder."""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipelines.features.core import compute_features, feature_fingerprint, next_return
from pipelines.runfolder import RunFolder


def build_run_features(folder: RunFolder) -> dict[str, Any]:
    bars = pd.read_parquet(folder.bars)
    features = compute_features(bars)
    features["next_return"] = next_return(bars)
    features.to_parquet(folder.features)
    return {
        "n_rows": len(features),
        "n_features": features.shape[1] - 1,
        "fingerprint": feature_fingerprint(),
    }
