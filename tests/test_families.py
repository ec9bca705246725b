"""Each family's export: signatures as documented, in-graph preprocessing = Python-side."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.applications import inception_v3 as keras_inception
from PIL import Image

from tests.conftest import SAMPLES
from training import cifar10, mnist
from training.data import cifar10_folder, imagenet_class_names, load_imdb_reviews, load_mnist
from training.preprocessing import decode_images, tokenize_all, vocabulary

F32, STR, I32 = tf.float32, tf.string, tf.int32

# model -> signature -> ({input: (dtype, shape)}, {output: (dtype, shape)})
CONTRACT = {
    "mnist": {
        "serving_default": ({"image_input": (F32, [None, 784])},
                            {"prediction": (F32, [None, 10])}),
        "predict_image": ({"image_bytes": (STR, [None])},
                          {"probabilities": (F32, [None, 10]), "classes": (STR, [None, 3]),
                           "scores": (F32, [None, 3])}),
    },
    "cifar10": {
        "serving_default": ({"image": (F32, [None, 32, 32, 3])},
                            {"probabilities": (F32, [None, 8])}),
        "predict_image": ({"image_bytes": (STR, [None])},
                          {"probabilities": (F32, [None, 8]), "classes": (STR, [None, 3]),
                           "scores": (F32, [None, 3])}),
    },
    "cifar10_transfer": {
        "serving_default": ({"image": (F32, [None, 32, 32, 3])},
                            {"probabilities": (F32, [None, 2])}),
        "predict_image": ({"image_bytes": (STR, [None])},
                          {"probabilities": (F32, [None, 2]), "classes": (STR, [None, 2]),
                           "scores": (F32, [None, 2])}),
    },
    "imdb_sentiment": {
        "serving_default": ({"token_ids": (I32, [None, 80])}, {"probability": (F32, [None])}),
        "predict_text": ({"text": (STR, [None])},
                         {"probability": (F32, [None]), "label": (STR, [None])}),
    },
    "inception_v3": {
        "serving_default": ({"images": (F32, [None, 299, 299, 3])},
                            {"probabilities": (F32, [None, 1000])}),
        "predict_image": ({"image_bytes": (STR, [None])},
                          {"probabilities": (F32, [None, 1000]), "classes": (STR, [None, 3]),
                           "scores": (F32, [None, 3])}),
    },
}


def load(models_dir: Path, name: str):
    return tf.saved_model.load(str(models_dir / name / "1"))


def call(saved, signature: str, **inputs) -> dict[str, np.ndarray]:
    outputs = saved.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in outputs.items()}


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_signatures_match_the_contract(models_dir, name):
    signatures = load(models_dir, name).signatures
    assert set(signatures) == set(CONTRACT[name])
    for signature, (inputs, outputs) in CONTRACT[name].items():
        function = signatures[signature]
        got_inputs = function.structured_input_signature[1]
        assert {k: (v.dtype, v.shape.as_list()) for k, v in got_inputs.items()} == inputs
        got_outputs = function.structured_outputs
        assert {k: (v.dtype, v.shape.as_list()) for k, v in got_outputs.items()} == outputs


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_labels_and_metrics_are_exported(models_dir, name):
    version = models_dir / name / "1"
    labels = (version / "assets" / "labels.txt").read_text().splitlines()
    expected = {"mnist": [str(d) for d in range(10)], "cifar10": list(cifar10.BASE_CLASSES),
                "cifar10_transfer": ["ship", "truck"], "imdb_sentiment": ["negative", "positive"],
                "inception_v3": imagenet_class_names()}[name]
    assert labels == expected
    metrics = json.loads((version / "metrics.json").read_text())
    assert metrics["model"] == name
    if name != "inception_v3":
        assert metrics["val_size"] > 0 and 0 <= metrics["val_accuracy"] <= 1
        assert (version / "training_history.png").is_file()


def encode_png(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_mnist_predict_image_equals_python_preprocessing(models_dir):
    saved = load(models_dir, "mnist")
    _, (x_test, _) = load_mnist()
    digits = x_test[:16]
    from_bytes = call(saved, "predict_image", image_bytes=[encode_png(d) for d in digits])
    from_tensor = call(saved, "serving_default", image_input=mnist.flatten(digits))
    np.testing.assert_allclose(from_bytes["probabilities"], from_tensor["prediction"],
                               atol=1e-6)
    best = from_tensor["prediction"].argmax(axis=1)
    assert [c[0].decode() for c in from_bytes["classes"]] == [str(b) for b in best]


@pytest.mark.parametrize("name,classes", [("cifar10", cifar10.BASE_CLASSES),
                                          ("cifar10_transfer", cifar10.TRANSFER_CLASSES)])
def test_cifar_predict_image_on_real_png_files_equals_python_preprocessing(
        models_dir, name, classes):
    saved = load(models_dir, name)
    files = [sorted((cifar10_folder() / "test" / c).glob("*.png"))[0] for c in classes]
    pixels = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    from_bytes = call(saved, "predict_image", image_bytes=[f.read_bytes() for f in files])
    from_tensor = call(saved, "serving_default", image=pixels.astype(np.float32) / 255.0)
    np.testing.assert_allclose(from_bytes["probabilities"], from_tensor["probabilities"],
                               atol=1e-6)
    assert {c.decode() for row in from_bytes["classes"] for c in row} <= set(classes)
    np.testing.assert_allclose(from_bytes["scores"][:, 0],
                               from_tensor["probabilities"].max(axis=1), atol=1e-6)


def test_transfer_keeps_the_frozen_base_and_replaces_the_head(models_dir):
    base = keras.models.load_model(models_dir / "cifar10" / "1" / "model.keras")
    transfer = keras.models.load_model(models_dir / "cifar10_transfer" / "1" / "model.keras")
    frozen = [layer.name for layer in transfer.layers if not layer.trainable]
    blocks = [[f"conv{i}", f"conv{i}_bn", f"conv{i}_relu"] for i in (1, 2, 3, 4)]
    assert frozen == [*blocks[0], *blocks[1], "pool1", "drop1", *blocks[2], *blocks[3],
                      "pool2", "drop2"]  # the quick profile does not fine-tune
    for layer_name in ("conv1", "conv1_bn", "conv2", "conv3", "conv4", "conv4_bn"):
        for ours, theirs in zip(transfer.get_layer(layer_name).get_weights(),
                                base.get_layer(layer_name).get_weights(), strict=True):
            np.testing.assert_array_equal(ours, theirs)
    assert transfer.get_layer("head").units == 2 and base.get_layer("head").units == 8


def test_imdb_predict_text_equals_python_tokenization(models_dir):
    saved = load(models_dir, "imdb_sentiment")
    from training.data import imdb_word_index

    texts, _ = load_imdb_reviews("test", per_class=8)
    texts += [p.read_text(encoding="utf-8") for p in sorted((SAMPLES / "reviews").glob("*.txt"))]
    ids = tokenize_all(texts, vocabulary(imdb_word_index(), 10_000), maxlen=80)
    from_text = call(saved, "predict_text", text=texts)
    from_ids = call(saved, "serving_default", token_ids=ids)
    np.testing.assert_allclose(from_text["probability"], from_ids["probability"], atol=1e-6)
    expected = np.where(from_ids["probability"] >= 0.5, b"positive", b"negative")
    np.testing.assert_array_equal(from_text["label"], expected)


@pytest.mark.slow
def test_inception_predict_image_equals_keras_pipeline(models_dir, tiny_exports):
    """In-graph = Keras' preprocess_input + model.predict + decode_predictions(top=3)."""
    saved = load(models_dir, "inception_v3")
    files = sorted((SAMPLES / "images").glob("*.jp*g"))[:4]
    data = [f.read_bytes() for f in files]
    graph = call(saved, "predict_image", image_bytes=data)

    pixels = decode_images(tf.constant(data), (299, 299), 3).numpy()
    model = tiny_exports["inception_v3"].model
    predictions = model.predict(keras_inception.preprocess_input(pixels), verbose=0)
    decoded = keras_inception.decode_predictions(predictions, top=3)
    np.testing.assert_allclose(graph["probabilities"], predictions, atol=1e-5)
    for row_classes, row_scores, expected in zip(graph["classes"], graph["scores"], decoded,
                                                 strict=True):
        assert [c.decode() for c in row_classes] == [name for _, name, _ in expected]
        np.testing.assert_allclose(row_scores, [s for _, _, s in expected], atol=1e-5)


def test_inception_without_weights_says_so_loudly(models_dir):
    metrics = json.loads((models_dir / "inception_v3" / "1" / "metrics.json").read_text())
    assert metrics["weights"] == "random"
    assert "RANDOM weights" in metrics["warning"]
    assert not (models_dir / "inception_v3" / "1" / "model.keras").exists()
