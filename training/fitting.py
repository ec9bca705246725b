"""The fit-then-measure step shared by the trained families."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

ArrayPair = tuple[np.ndarray, np.ndarray]


def fit(model: keras.Model, train: ArrayPair | tf.data.Dataset, val: ArrayPair, *,
        train_size: int, epochs: int, batch_size: int, verbose: int,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        before_evaluate: Callable[[], object] | None = None) -> tuple[dict, dict[str, Any]]:
    """Train, then evaluate the final weights on the validation set.

    Returns the Keras history and the metrics recorded in `metrics.json`. The reported
    validation figures come from a fresh `evaluate()` so they describe the exported weights
    (after `before_evaluate` restored the best checkpoint, say), not the last epoch.
    """
    started = time.perf_counter()
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
    return history_lists, metrics
