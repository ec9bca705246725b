"""InceptionV3 with ImageNet weights (no training), top-3 labels computed in the graph.

Weights: a local `.h5` passed with `--data`, else Keras' own `weights="imagenet"` download
(which also finds the file in `$KERAS_HOME/models/`). When neither works, the model is built
with random weights and the export says so loudly, in the log and in `metrics.json`.

Signatures: `serving_default` takes `images` float32 [-1, 299, 299, 3] already passed through
`preprocess_input` and returns `probabilities` [-1, 1000]; `predict_image` takes image bytes of
any size and returns `probabilities`, top-3 `classes` (ImageNet names, e.g. "umbrella") and
`scores`, as `decode_predictions(preds, top=3)` would.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras.applications import inception_v3

from training.data import DataUnavailable, imagenet_class_names
from training.export import Export, Signature
from training.signatures import image_classifier, image_examples, png

NAME = "inception_v3"
SIZE = (299, 299)
WEIGHTS_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
               "inception_v3_weights_tf_dim_ordering_tf_kernels.h5")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Profile:
    """Nothing is trained, so the profiles are the same; kept for a uniform command line."""


PROFILES = {"tiny": Profile(), "quick": Profile(), "full": Profile()}


def build_model(weights: Path | str | None) -> tuple[keras.Model, dict]:
    """The Keras model and how its weights were obtained (recorded in metrics.json)."""
    if isinstance(weights, Path):
        if not weights.exists():
            raise DataUnavailable(f"InceptionV3 weights: {weights} does not exist. Expected "
                                  f"the ImageNet weights .h5 from {WEIGHTS_URL}.")
        return inception_v3.InceptionV3(weights=str(weights)), {"weights": str(weights)}
    if weights is None:
        return inception_v3.InceptionV3(weights=None), _random_weights("weights=None requested")
    try:
        return inception_v3.InceptionV3(weights="imagenet"), {"weights": "imagenet"}
    except Exception as err:  # Keras raises bare Exception when the download fails
        return inception_v3.InceptionV3(weights=None), _random_weights(str(err))


def _random_weights(reason: str) -> dict:
    warning = (f"WARNING: InceptionV3 was exported with RANDOM weights ({reason}); its "
               f"predictions are meaningless. Get {WEIGHTS_URL} and pass it with --data "
               "(or place it in $KERAS_HOME/models/), then export again.")
    log.warning(warning)
    return {"weights": "random", "warning": warning}


def train(profile: Profile, data: Path | None = None, verbose: int = 2,
          weights: Path | str | None = "imagenet") -> Export:
    started = time.perf_counter()
    labels = imagenet_class_names()
    model, weight_info = build_model(data if data is not None else weights)
    metrics = {**weight_info, "trained": False, "num_classes": len(labels),
               "parameters": int(model.count_params()),
               "wall_time_s": round(time.perf_counter() - started, 1)}
    # The tensor example would be 268,203 numbers; only the image one is worth showing.
    examples = image_examples("images", None, png(_example_picture()))
    return Export(NAME, model, signatures(model, labels), labels, metrics, examples=examples,
                  keep_keras_model=False,  # the ImageNet weights are Keras' own download
                  card=card(metrics))


def card(metrics: dict) -> dict:
    found = {
        "task": "photo classification into the 1,000 ImageNet classes (top 3 labels)",
        "data": {"source": "ImageNet ILSVRC-2012, pretrained weights from Keras Applications "
                           "(no training here)"},
        "inputs": {
            "serving_default": {"images": "299x299x3 RGB values SCALED TO -1..1 "
                                          "(pixel / 127.5 - 1)"},
            "predict_image": {"image_bytes": "an image file (JPEG, PNG, GIF, BMP or WebP), "
                                             "resized to 299x299 in the graph"},
        },
    }
    if metrics.get("weights") == "random":
        found["warning"] = ("random weights: the ImageNet weights were not available at export, "
                            "so its predictions are meaningless")
    return found


def _example_picture() -> np.ndarray:
    """A small colour gradient: a valid image of another size than 299, to show resizing."""
    y, x = np.mgrid[0:64, 0:96]
    return np.stack([x * 255 // 95, y * 255 // 63, np.full_like(x, 128)], -1).astype(np.uint8)


def signatures(model: keras.Model, labels: list[str]) -> dict[str, Signature]:
    return image_classifier(
        model, labels, input_name="images", input_shape=[None, *SIZE, 3],
        output_name="probabilities", size=SIZE, channels=3,
        prepare=inception_v3.preprocess_input)
