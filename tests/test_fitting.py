"""training.fitting.hold_out: the validation split the full profiles choose checkpoints by."""

from __future__ import annotations

import numpy as np

from training.fitting import hold_out


def test_hold_out_takes_per_class_examples_out_of_training_and_shares_none():
    labels = np.repeat(np.arange(3), [10, 7, 5])
    images = np.arange(len(labels)) * 10  # distinct values stand for distinct examples
    (train_x, train_y), (val_x, val_y) = hold_out((images, labels), per_class=2)
    assert np.bincount(val_y).tolist() == [2, 2, 2]
    assert np.bincount(train_y).tolist() == [8, 5, 3]
    assert not set(train_x) & set(val_x)
    assert sorted([*train_x, *val_x]) == sorted(images)
    # examples keep their labels
    assert all(labels[x // 10] == y for x, y in zip(val_x, val_y, strict=True))
