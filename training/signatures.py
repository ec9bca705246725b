"""Signature builders shared by the image families.

An image classifier exports two signatures: `serving_default`, the plain tensor interface a
Keras user would export, and `predict_image`, which carries decoding, resizing and the model's
own input preparation in the graph and returns the top-k labels next to the probabilities.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from training.export import Signature
from training.monitoring import DataProfile, MonitoredSignature, image_summaries, output_summaries
from training.preprocessing import decode_images, top_classes

TOP_K = 3


def image_classifier(model: keras.Model, labels: Sequence[str], *, input_name: str,
                     input_shape: list[int | None], output_name: str, size: tuple[int, int],
                     channels: int, prepare: Callable[[tf.Tensor], tf.Tensor],
                     top_k: int = TOP_K) -> dict[str, Signature]:
    """`prepare` maps decoded pixels (float32 0..255, [N, h, w, channels]) to the model input."""
    label_tensor = tf.constant(list(labels))
    k = min(top_k, len(labels))

    def serving_default(tensor):
        return {output_name: model(tensor, training=False)}

    def predict_image(image_bytes):
        pixels = decode_images(image_bytes, size, channels)
        probabilities = model(prepare(pixels), training=False)
        classes, scores = top_classes(probabilities, label_tensor, k)
        return {"probabilities": probabilities, "classes": classes, "scores": scores}

    return {
        "serving_default": Signature(
            serving_default, [tf.TensorSpec(input_shape, tf.float32, name=input_name)]),
        "predict_image": Signature(
            predict_image, [tf.TensorSpec([None], tf.string, name="image_bytes")],
            summary=["classes", "scores"]),
    }


def b64(data: bytes) -> dict[str, str]:
    """A binary value in the JSON request format ({"b64": ...}, TensorFlow Serving's)."""
    return {"b64": base64.b64encode(data).decode("ascii")}


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def image_examples(input_name: str, tensor: np.ndarray | None, image: bytes) -> dict[str, dict]:
    """Request examples for `image_classifier` signatures (tensor example optional)."""
    examples = {"predict_image": {"instances": [{"image_bytes": b64(image)}]}}
    if tensor is not None:
        rounded = np.round(tensor.astype(np.float64), 4).tolist()
        examples["serving_default"] = {"instances": [{input_name: rounded}]}
    return examples


def image_profile(data: str, tensors: np.ndarray, pixels: np.ndarray, *, input_name: str,
                  value_range: tuple[float, float], output_name: str,
                  labels: Sequence[str]) -> DataProfile:
    """The monitoring profile of `image_classifier`'s signatures from validation images:
    `tensors` as `serving_default` takes them, `pixels` (uint8) encoded as PNG files for
    `predict_image` (whose input, file bytes, gets no input summary: only its answers)."""
    files = np.array([png(p if p.ndim == 2 or p.shape[-1] == 3 else p[..., 0]) for p in pixels],
                     dtype=object)
    return DataProfile(data, {
        "serving_default": MonitoredSignature(
            {input_name: tensors},
            image_summaries(input_name, tensors, *value_range)
            + output_summaries(output_name, list(labels))),
        "predict_image": MonitoredSignature(
            {"image_bytes": files}, output_summaries("probabilities", list(labels))),
    })
