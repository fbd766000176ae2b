"""Walk-forward windowing below both search and training: the run's prepared data, purged folds
and the labelled windows a network trains on. One definition, so the search scores exactly the
folds and windows training uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.config import PipelineConfig
from pipelines.features.core import compute_features, next_return, windows_ending_in
from pipelines.runfolder import RunFolder

LABEL_HORIZON = 1  # bars a next-bar label looks ahead: the purge gap (config.label_horizon for several)


@dataclass(frozen=True)
class Fold:
    train_start: int
    train_end: int  # exclusive, purged
    val_start: int
    val_end: int  # exclusive


def walk_forward_folds(
    n_rows: int, n_folds: int, val_bars: int, purge: int = LABEL_HORIZON, embargo: int = 0
) -> list[Fold]:
    """Expanding-window folds whose validation blocks tile the last ``n_folds*val_bars`` rows."""
    first_val = n_rows - n_folds * val_bars
    gap = purge + embargo
    if first_val <= gap:
        raise ValueError(f"{n_rows} rows cannot hold {n_folds} folds of {val_bars} bars")
    return [
        Fold(0, first_val + k * val_bars - gap, first_val + k * val_bars, first_val + (k + 1) * val_bars)
        for k in range(n_folds)
    ]


def config_folds(n_rows: int, config: PipelineConfig) -> list[Fold]:
    return walk_forward_folds(
        n_rows, config.n_folds, config.val_bars, purge=config.label_horizon, embargo=config.embargo_bars
    )


@dataclass
class PreparedData:
    """Bars of the search window with their features and labels, computed once per run."""

    bars: pd.DataFrame
    features: pd.DataFrame
    target: pd.Series

    @classmethod
    def from_bars(cls, bars: pd.DataFrame, window_bars: int) -> PreparedData:
        return cls.from_frames(bars, compute_features(bars), next_return(bars), window_bars)

    @classmethod
    def from_frames(
        cls, bars: pd.DataFrame, features: pd.DataFrame, target: pd.Series, window_bars: int
    ) -> PreparedData:
        """The last ``window_bars`` rows; features were computed on the full history."""
        return cls(bars=bars, features=features, target=target).tail(window_bars)

    def tail(self, n_rows: int) -> PreparedData:
        keep = slice(max(len(self.bars) - n_rows, 0), len(self.bars))
        return PreparedData(
            self.bars.iloc[keep].reset_index(drop=True), self.features.iloc[keep], self.target.iloc[keep]
        )

    def before(self, end: int) -> PreparedData:
        """Rows before ``end``; labels that look past it are unknown there (purged)."""
        target = self.target.iloc[:end].copy()
        target.iloc[max(end - LABEL_HORIZON, 0) :] = float("nan")
        return PreparedData(self.bars.iloc[:end], self.features.iloc[:end], target)


def labelled_windows(
    scaled: np.ndarray, y: np.ndarray, seq_len: int, start: int, end: int, horizons: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Training pairs for windows ending in [start, end) whose labels are all known.

    ``y[t]`` is the next-bar return at t; with several horizons the label of the window ending
    at t is ``y[t], y[t+1], ...`` (one column per horizon).
    """
    x, ends = windows_ending_in(scaled, seq_len, start, end)
    if horizons == 1:
        labels = y[ends]
    else:
        padded = np.concatenate([y, np.full(horizons - 1, np.nan)])
        labels = np.stack([padded[ends + h] for h in range(horizons)], axis=1)
    known = ~np.isnan(labels).any(axis=tuple(range(1, labels.ndim)))  # (also when there are none)
    return x[known], labels[known]


def inner_split(
    x: np.ndarray, y: np.ndarray, fraction: float, purge: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The fold's training windows as (fit part, inner validation part): the newest ``fraction``
    of them validates early stopping, the ``purge`` windows before it are dropped (their labels
    reach into it). The fold's own validation block is never used to stop training."""
    n_inner = int(len(x) * fraction)
    if fraction <= 0 or n_inner < 20 or len(x) - n_inner - purge < 50:
        return x, y, None, None
    cut = len(x) - n_inner
    return x[: cut - purge], y[: cut - purge], x[cut:], y[cut:]


def search_window(
    bars: pd.DataFrame, features: pd.DataFrame, target: pd.Series, config: PipelineConfig, full: bool = False
) -> PreparedData:
    """The rows before the holdout (search and fine-tune never see it): the search window, or
    with ``full`` all that history."""
    data = PreparedData(bars, features, target).before(len(bars) - config.holdout_bars)
    return data if full else data.tail(config.window_bars)


def run_data(folder: RunFolder, config: PipelineConfig, full: bool = False) -> PreparedData:
    """The run's bars, features and labels as the validate and features steps kept them."""
    frame = pd.read_parquet(folder.features)
    return search_window(
        pd.read_parquet(folder.bars), frame.drop(columns="next_return"), frame["next_return"], config, full
    )
