"""pipelines.windowing.walk_forward_folds: purged expanding-window folds."""

from __future__ import annotations

import pytest

from pipelines.windowing import LABEL_HORIZON, walk_forward_folds


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


@pytest.mark.parametrize(("n", "fraction", "purge"), [(500, 0.2, 1), (800, 0.25, 3), (300, 0.1, 2)])
def test_inner_validation_is_the_newest_training_windows_after_a_purge(n, fraction, purge):
    import numpy as np

    from pipelines.windowing import inner_split

    x = np.arange(n, dtype=float)[:, None, None]  # a window's value is its position in time
    y = np.arange(n, dtype=float)
    x_fit, y_fit, x_in, y_in = inner_split(x, y, fraction, purge)
    assert x_in is not None and y_in is not None
    assert len(x_in) == int(n * fraction)
    assert x_in[0, 0, 0] - x_fit[-1, 0, 0] == purge + 1  # the purge windows are in neither part
    assert x_in[-1, 0, 0] == n - 1 and x_fit[0, 0, 0] == 0  # newest validates, oldest fits
    np.testing.assert_array_equal(x_fit[:, 0, 0], y_fit)


def test_no_inner_validation_when_off_or_too_small():
    import numpy as np

    from pipelines.windowing import inner_split

    x, y = np.zeros((500, 2, 1)), np.zeros(500)
    assert inner_split(x, y, 0.0, 1)[2] is None
    assert inner_split(x[:60], y[:60], 0.2, 1)[2] is None  # 12 windows validate nothing
    assert len(inner_split(x, y, 0.0, 1)[0]) == 500


def test_prediction_sets_are_the_ensemble_each_seed_and_two_disjoint_halves():
    import numpy as np

    from pipelines.search.objective import prediction_sets

    members = np.arange(12, dtype=float).reshape(4, 3)
    sets = prediction_sets(members.mean(axis=0), members)
    assert len(sets) == 1 + 4 + 2
    np.testing.assert_array_equal(sets[1], members[0])
    np.testing.assert_array_equal(sets[5], members[:2].mean(axis=0))
    np.testing.assert_array_equal(sets[6], members[2:].mean(axis=0))
    assert len(prediction_sets(members[0], members[:1])) == 1  # one seed: nothing to split
