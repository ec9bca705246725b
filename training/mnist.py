"""MNIST digits: the dense 784-256-128-10 network of the tfdeploy example.

Signatures: `serving_default` takes `image_input` float32 [-1, 784] (pixels / 255) and returns
`prediction` [-1, 10], exactly the tfdeploy example's names; `predict_image` takes digit image
bytes (white digit on black, like MNIST) and returns `probabilities`, `classes`, `scores`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from training.data import load_mnist
from training.export import Export, Signature
from training.fitting import fit, hold_out
from training.signatures import image_classifier, image_examples, image_profile, png

NAME = "mnist"
LABELS = [str(d) for d in range(10)]
PROFILE_EVERY = 5  # the monitoring profile describes every 5th test image (2,000)


@dataclass(frozen=True)
class Profile:
    train_size: int | None  # None = all 60,000
    val_size: int | None  # of the test set; None = all 10,000
    epochs: int
    batch_size: int = 128
    val_per_class: int = 0  # held out of the training digits; 0: validate on the test set


PROFILES = {"tiny": Profile(2_000, 500, 1),
            "quick": Profile(None, None, 5),
            "full": Profile(None, None, 10, val_per_class=500)}


def build_model() -> keras.Model:
    model = keras.Sequential([
        keras.Input((784,), name="image_input"),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dropout(0.4),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(10, activation="softmax", name="prediction"),
    ], name=NAME)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def flatten(images: np.ndarray) -> np.ndarray:
    """uint8 [N, 28, 28] -> float32 [N, 784] in 0..1, the `serving_default` input."""
    return images.reshape(len(images), 784).astype(np.float32) / 255.0


def train(profile: Profile, data: Path | None = None, verbose: int = 2) -> Export:
    (x_train, y_train), (x_test, y_test) = load_mnist(data)
    train_set = flatten(x_train[:profile.train_size]), y_train[:profile.train_size]
    test_set = flatten(x_test[:profile.val_size]), y_test[:profile.val_size]
    if profile.val_per_class:
        train_set, val_set = hold_out(train_set, profile.val_per_class)
    else:
        val_set, test_set = test_set, None
    model = build_model()
    history, metrics = fit(model, train_set, val_set, train_size=len(train_set[1]),
                           epochs=profile.epochs, batch_size=profile.batch_size, verbose=verbose,
                           test=test_set)
    digit = x_test[0]
    examples = image_examples("image_input", flatten(digit[None])[0], png(digit))
    profiled = x_test[::PROFILE_EVERY]  # spread: the split's two halves differ in writers
    profile = image_profile(
        f"MNIST test split, every {PROFILE_EVERY}th image ({len(profiled):,})", flatten(profiled),
        profiled, input_name="image_input", value_range=(0.0, 1.0), output_name="prediction",
        labels=LABELS)
    return Export(NAME, model, signatures(model), LABELS, metrics, history, examples=examples,
                  card=CARD, profile=profile)


CARD = {
    "task": "handwritten digit classification: a 28x28 grey image -> one of 10 digits",
    "data": {"source": "MNIST (keras.datasets.mnist): 60,000 training and 10,000 test images"},
    "inputs": {
        "serving_default": {"image_input": (
            "784 grey values, the 28x28 image row by row, white digit on black, SCALED TO 0..1 "
            "(pixel / 255). Raw 0-255 pixels are not rejected but saturate the network: the "
            "answer is a confident one-hot of no meaning.")},
        "predict_image": {"image_bytes": (
            "an image file (JPEG, PNG, GIF, BMP or WebP) of a white digit on black; it is made "
            "grey and resized to 28x28 in the graph")},
    },
}


def signatures(model: keras.Model) -> dict[str, Signature]:
    return image_classifier(
        model, LABELS, input_name="image_input", input_shape=[None, 784],
        output_name="prediction", size=(28, 28), channels=1,
        prepare=lambda pixels: tf.reshape(pixels, [-1, 784]) / 255.0)
