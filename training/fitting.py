"""The fit-then-measure step shared by the trained families."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any

import keras
import numpy as np
import tensorflow as tf

ArrayPair = tuple[np.ndarray, np.ndarray]

# Callbacks that watch every fit() of a family without each family passing them on: the
# serve-while-training launcher's progress (training.serve).
_watchers: ContextVar[tuple[keras.callbacks.Callback, ...]] = ContextVar("watchers", default=())


@contextlib.contextmanager
def watched_by(*callbacks: keras.callbacks.Callback) -> Iterator[None]:
    """Every fit() inside the block also reports to `callbacks`."""
    token = _watchers.set(_watchers.get() + callbacks)
    try:
        yield
    finally:
        _watchers.reset(token)


def fit(model: keras.Model, train: ArrayPair | tf.data.Dataset, val: ArrayPair, *,
        train_size: int, epochs: int, batch_size: int, verbose: int,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        before_evaluate: Callable[[], object] | None = None,
        test: ArrayPair | None = None, best_by: str | None = None) -> tuple[dict, dict[str, Any]]:
    """Train, then evaluate the final weights on the validation set (and the test set).

    Returns the Keras history and the metrics recorded in `metrics.json`. The reported
    validation figures come from a fresh `evaluate()` so they describe the exported weights
    (after `before_evaluate` restored the best checkpoint, say), not the last epoch. `test` is
    data no callback saw: its accuracy is the unbiased figure. `best_by` names the history
    key the kept epoch was chosen by (`val_accuracy`: its highest, `val_loss`: its lowest).
    """
    started = time.perf_counter()
    callbacks = [*callbacks, *_watchers.get()]
    if isinstance(train, tf.data.Dataset):
        history = model.fit(train, validation_data=val, epochs=epochs, verbose=verbose,
                            callbacks=list(callbacks), shuffle=False)  # the dataset shuffles
    else:
        history = model.fit(*train, validation_data=val, epochs=epochs, batch_size=batch_size,
                            verbose=verbose, callbacks=list(callbacks))
    if before_evaluate is not None:
        before_evaluate()
    val_loss, val_accuracy = model.evaluate(*val, batch_size=256, verbose=0)
    metrics = {
        "train_size": int(train_size),
        "val_size": int(len(val[1])),
        "epochs": len(history.history["loss"]),
        "epochs_planned": epochs,
        "batch_size": batch_size,
        "val_accuracy": round(float(val_accuracy), 4),
        "val_loss": round(float(val_loss), 4),
        "wall_time_s": round(time.perf_counter() - started, 1),
    }
    history_lists = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    if best_by is not None:
        values = history_lists[best_by]
        pick = max if "acc" in best_by else min
        metrics["best_epoch"] = values.index(pick(values)) + 1
    if test is not None:
        _, test_accuracy = model.evaluate(*test, batch_size=256, verbose=0)
        metrics.update(test_size=int(len(test[1])), test_accuracy=round(float(test_accuracy), 4))
    return history_lists, metrics


def hold_out(pair: ArrayPair, per_class: int) -> tuple[ArrayPair, ArrayPair]:
    """(train, validation): the last `per_class` examples of each label leave the training
    data, so early stopping and checkpoints choose on data the test split never shares."""
    x, y = pair
    held = np.concatenate([np.flatnonzero(y == label)[-per_class:] for label in np.unique(y)])
    keep = np.setdiff1d(np.arange(len(y)), held)
    return (x[keep], y[keep]), (x[held], y[held])
