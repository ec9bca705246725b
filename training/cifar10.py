"""CIFAR-10: a small VGG-style CNN on 8 classes, then transfer-learned to the other 2.

`cifar10` trains from the PNG class folders with augmentation (rotation 15 degrees, shifts,
horizontal flip), EarlyStopping and ModelCheckpoint on the best validation score (val_loss
when validating on test/, val_accuracy on a held-out slice of train/). The conv blocks carry
batch normalisation, so the dense layers' dropout is 0.3 rather than the book's 0.5: with
both, training accuracy stayed below validation accuracy for the whole full run.
`cifar10_transfer` freezes conv1..drop2 of a trained `cifar10`, swaps the 8-way head for a
2-way softmax and trains on ship/truck.

Signatures: `serving_default` takes `image` float32 [-1, 32, 32, 3] in 0..1 and returns
`probabilities`; `predict_image` takes image bytes and also returns `classes` and `scores`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from training.data import CIFAR10_CLASSES, load_cifar10
from training.export import Export, Signature
from training.fitting import fit, hold_out
from training.monitoring import DataProfile
from training.signatures import image_classifier, image_examples, image_profile, png

NAME = "cifar10"
TRANSFER_NAME = "cifar10_transfer"
BASE_CLASSES = CIFAR10_CLASSES[:8]
TRANSFER_CLASSES = CIFAR10_CLASSES[8:]
FROZEN_UP_TO = "drop2"  # conv1..drop2 keep their trained weights in transfer learning
DENSE_DROPOUT = 0.3
PROFILE_PER_CLASS = 150  # test images per class the monitoring profile describes


@dataclass(frozen=True)
class Profile:
    train_per_class: int | None  # None = all 5,000
    test_per_class: int | None  # validation images per class; None = all 1,000
    epochs: int
    batch_size: int = 32
    patience: int = 10
    val_per_class: int = 0  # held out of train/ for early stopping; 0: validate on test/
    shift: float = 0.2  # augmentation: translation as a share of the image
    fine_tune_epochs: int = 0  # transfer: then unfreeze the last conv block at a low rate
    cosine: bool = True  # learning rate decaying over the run; False: a constant 1e-3


PROFILES = {"tiny": Profile(40, 10, 1, batch_size=32),
            # ~1.5 minutes on 2 cores, ~50% on 8 classes (12.5% by chance): `make serve`
            # answers with every model within 5 minutes; the full profile reaches 0.81+
            "quick": Profile(1_000, 250, 5, batch_size=64),
            "full": Profile(None, None, 60, batch_size=64, patience=15, val_per_class=500,
                            shift=0.1)}
TRANSFER_PROFILES = {"tiny": Profile(40, 10, 1, batch_size=32),
                     "quick": Profile(1_000, 250, 3, batch_size=64),
                     "full": Profile(None, None, 15, batch_size=64, patience=8,
                                     val_per_class=500, shift=0.1, fine_tune_epochs=15)}


def build_model(num_classes: int) -> keras.Model:
    layers = keras.layers

    def conv(filters: int, name: str, padding: str = "same") -> list[keras.layers.Layer]:
        return [layers.Conv2D(filters, 3, padding=padding, use_bias=False, name=name),
                layers.BatchNormalization(name=f"{name}_bn"),
                layers.Activation("relu", name=f"{name}_relu")]

    model = keras.Sequential([
        keras.Input((32, 32, 3), name="image"),
        *conv(32, "conv1"), *conv(32, "conv2", "valid"),
        layers.MaxPooling2D(name="pool1"),
        layers.Dropout(0.25, name="drop1"),
        *conv(64, "conv3"), *conv(64, "conv4", "valid"),
        layers.MaxPooling2D(name="pool2"),
        layers.Dropout(0.25, name="drop2"),
        layers.Flatten(name="flatten"),
        layers.Dense(256, activation="relu", name="dense1"),
        layers.Dropout(DENSE_DROPOUT, name="drop3"),
        layers.Dense(256, activation="relu", name="dense2"),
        layers.Dropout(DENSE_DROPOUT, name="drop4"),
        layers.Dense(num_classes, activation="softmax", name="head"),
    ], name=NAME)
    _compile(model)
    return model


LearningRate = float | keras.optimizers.schedules.LearningRateSchedule


def _compile(model: keras.Model, learning_rate: LearningRate = 1e-3) -> None:
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def augmented(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int = 0,
              shift: float = 0.2) -> tf.data.Dataset:
    """Shuffled, augmented training batches, as the book's ImageDataGenerator gave them."""
    augment = keras.Sequential([
        keras.layers.RandomRotation(15 / 360, fill_mode="nearest", seed=seed),
        keras.layers.RandomTranslation(shift, shift, fill_mode="nearest", seed=seed),
        keras.layers.RandomFlip("horizontal", seed=seed),
    ])
    return (tf.data.Dataset.from_tensor_slices((x, y))
            .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size)
            .map(lambda images, labels: (augment(images, training=True), labels),
                 num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def _scaled(pair: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return pair[0].astype(np.float32) / 255.0, pair[1]


def _train(model: keras.Model, name: str, classes: tuple[str, ...], profile: Profile,
           data: Path | None, verbose: int) -> Export:
    train_set, test_set = map(_scaled, load_cifar10(classes, profile.train_per_class,
                                                    profile.test_per_class, data))
    if profile.val_per_class:
        train_set, val_set = hold_out(train_set, profile.val_per_class)
    else:
        val_set, test_set = test_set, None
    steps = -(-len(train_set[1]) // profile.batch_size)
    _compile(model, keras.optimizers.schedules.CosineDecay(1e-3, profile.epochs * steps)
             if profile.cosine else 1e-3)
    monitor = "val_accuracy" if profile.val_per_class else "val_loss"
    with tempfile.TemporaryDirectory() as tmp:
        best = str(Path(tmp) / "best.weights.h5")
        callbacks = [
            keras.callbacks.EarlyStopping(monitor=monitor, patience=profile.patience),
            keras.callbacks.ModelCheckpoint(best, monitor=monitor, save_best_only=True,
                                            save_weights_only=True),
        ]
        history, metrics = fit(
            model, augmented(*train_set, profile.batch_size, shift=profile.shift), val_set,
            train_size=len(train_set[1]), epochs=profile.epochs, batch_size=profile.batch_size,
            verbose=verbose, callbacks=callbacks,
            before_evaluate=lambda: model.load_weights(best), best_by=monitor,
            test=None if profile.fine_tune_epochs else test_set)
        if profile.fine_tune_epochs:
            for layer in model.layers:
                layer.trainable = True
            for layer in model.layers:
                if layer.name == "drop1":
                    break
                layer.trainable = False
            _compile(model, 1e-4)
            fine, fine_metrics = fit(
                model, augmented(*train_set, profile.batch_size, shift=profile.shift), val_set,
                train_size=len(train_set[1]), epochs=profile.fine_tune_epochs,
                batch_size=profile.batch_size, verbose=verbose, callbacks=[
                    keras.callbacks.ModelCheckpoint(best, monitor=monitor, save_best_only=True,
                                                    save_weights_only=True,
                                                    initial_value_threshold=metrics["val_accuracy"])],
                before_evaluate=lambda: model.load_weights(best), best_by=monitor,
                test=test_set)
            improved = max(fine["val_accuracy"]) > max(history["val_accuracy"])
            history = {k: history[k] + fine[k] for k in history}
            metrics.update({k: v for k, v in fine_metrics.items()
                            if k.startswith(("val_", "test_"))},
                           fine_tune_epochs=fine_metrics["epochs"],
                           best_epoch=(metrics["epochs"] + fine_metrics["best_epoch"]
                                       if improved else metrics["best_epoch"]),
                           wall_time_s=round(metrics["wall_time_s"]
                                             + fine_metrics["wall_time_s"], 1))
    metrics["classes"] = list(classes)
    picture = (val_set[0][0] * 255).round().astype(np.uint8)
    examples = image_examples("image", val_set[0][0], png(picture))
    return Export(name, model, signatures(model, classes), list(classes), metrics, history,
                  examples=examples, card=card(name, classes),
                  profile=monitoring_profile(classes, data))


def monitoring_profile(classes: tuple[str, ...], data: Path | None) -> DataProfile:
    """The monitoring profile, from the first PROFILE_PER_CLASS test images of each class."""
    _, (pixels, _) = load_cifar10(classes, 1, PROFILE_PER_CLASS, data)
    return image_profile(
        f"CIFAR-10 test split, the first {PROFILE_PER_CLASS} images of each of its "
        f"{len(classes)} classes", pixels.astype(np.float32) / 255.0, pixels,
        input_name="image", value_range=(0.0, 1.0), output_name="probabilities",
        labels=classes)


def card(name: str, classes: tuple[str, ...] | list[str]) -> dict:
    transfer = name == TRANSFER_NAME
    return {
        "task": (f"small-photo classification into {len(classes)} classes: {', '.join(classes)}"
                 + (" (transfer-learned from the cifar10 model's features)" if transfer else "")),
        "data": {"source": f"CIFAR-10 (keras.datasets.cifar10), the images of these "
                           f"{len(classes)} classes only: 32x32 colour photos"},
        "inputs": {
            "serving_default": {"image": "32x32x3 RGB values SCALED TO 0..1 (pixel / 255)"},
            "predict_image": {"image_bytes": "an image file (JPEG, PNG, GIF, BMP or WebP), resized "
                                             "to 32x32 in the graph"},
        },
    }


def train(profile: Profile, data: Path | None = None, verbose: int = 2) -> Export:
    return _train(build_model(len(BASE_CLASSES)), NAME, BASE_CLASSES, profile, data, verbose)


def transfer_model(base: keras.Model, num_classes: int) -> keras.Model:
    """A copy of `base` with conv1..drop2 frozen and a new `num_classes`-way head."""
    copy = keras.models.clone_model(base)
    copy.set_weights(base.get_weights())
    body = copy.layers[:-1]
    frozen = True
    for layer in body:
        layer.trainable = not frozen
        frozen = frozen and layer.name != FROZEN_UP_TO
    model = keras.Sequential(
        [keras.Input((32, 32, 3), name="image"), *body,
         keras.layers.Dense(num_classes, activation="softmax", name="head")],
        name=TRANSFER_NAME)
    _compile(model)
    return model


def train_transfer(profile: Profile, base: keras.Model, data: Path | None = None,
                   verbose: int = 2) -> Export:
    model = transfer_model(base, len(TRANSFER_CLASSES))
    return _train(model, TRANSFER_NAME, TRANSFER_CLASSES, profile, data, verbose)


def signatures(model: keras.Model, classes: tuple[str, ...]) -> dict[str, Signature]:
    return image_classifier(
        model, classes, input_name="image", input_shape=[None, 32, 32, 3],
        output_name="probabilities", size=(32, 32), channels=3,
        prepare=lambda pixels: pixels / 255.0)
