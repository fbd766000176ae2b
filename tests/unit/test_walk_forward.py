"""pipelines.search.objective.walk_forward_folds: purged expanding-window folds."""

from __future__ import annotations

import pytest

from pipelines.search.objective import LABEL_HORIZON, walk_forward_folds


@pytest.mark.parametrize(
    ("n_rows", "n_folds", "val_bars", "purge"),
    [(1000, 3, 120, 1), (500, 1, 100, 1), (777, 5, 50, 3), (362, 3, 120, 1)],
)
def test_folds_tile_the_end_without_overlap(n_rows, n_folds, val_bars, purge):
    folds = walk_forward_folds(n_rows, n_folds, val_bars, purge=purge)
    assert len(folds) == n_folds
    assert folds[-1].val_end == n_rows
    assert folds[0].val_start == n_rows - n_folds * val_bars
    for prev, nxt in zip(folds, folds[1:], strict=False):
        assert nxt.val_start == prev.val_end  # consecutive blocks: no gap, no overlap
    for fold in folds:
        assert fold.val_end - fold.val_start == val_bars
        assert fold.train_start == 0
        assert fold.train_end == fold.val_start - purge
        assert fold.train_end > fold.train_start
        # no training row (nor its label, which looks LABEL_HORIZON bars ahead) reaches validation
        assert fold.train_end - 1 + LABEL_HORIZON < fold.val_start


def test_default_purge_is_the_label_horizon():
    (fold,) = walk_forward_folds(300, 1, 100)
    assert fold.val_start - fold.train_end == LABEL_HORIZON == 1


@pytest.mark.parametrize(
    ("n_rows", "n_folds", "val_bars", "purge"),
    [(300, 3, 100, 1), (200, 3, 100, 1), (301, 3, 100, 1), (305, 3, 100, 5), (0, 1, 10, 1)],
)
def test_too_few_rows_raise(n_rows, n_folds, val_bars, purge):
    with pytest.raises(ValueError, match=f"{n_rows} rows cannot hold {n_folds} folds of {val_bars} bars"):
        walk_forward_folds(n_rows, n_folds, val_bars, purge=purge)


def test_smallest_valid_window():
    (fold,) = walk_forward_folds(102, 1, 100, purge=1)
    assert (fold.train_start, fold.train_end, fold.val_start, fold.val_end) == (0, 1, 2, 102)
