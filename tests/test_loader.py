"""The loader on real (tiny) exports: signatures, assets.extra, runners, TensorFlow's errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from app.errors import InvalidInput
from app.models import loader
from tests.conftest import SAMPLES


@pytest.fixture(scope="module")
def mnist(models_dir):
    return loader.load(models_dir / "mnist" / "1")


def test_signatures_come_with_their_examples_and_summaries(mnist):
    assert set(mnist.signatures) == {"serving_default", "predict_image"}
    tensor = mnist.signatures["serving_default"]
    assert tensor.inputs["image_input"].dtype == "float32"
    assert tensor.inputs["image_input"].shape == (-1, 784)
    assert tensor.summary_outputs is None
    image = mnist.signatures["predict_image"]
    assert image.summary_outputs == ("classes", "scores")
    assert list(image.example["instances"][0]) == ["image_bytes"]
    assert len(mnist.labels) == 10 and mnist.training_metrics["model"] == "mnist"


def _warm_ups(loaded) -> dict:
    return {name: (arrays, rows) for name, arrays, rows in loaded.warmup_inputs}


def test_warm_up_inputs_are_the_examples_as_tensors(mnist):
    arrays, rows = _warm_ups(mnist)["serving_default"]
    assert rows == 1 and arrays["image_input"].shape == (1, 784)
    assert arrays["image_input"].dtype == np.float32
    arrays, rows = _warm_ups(mnist)["predict_image"]
    assert rows == 1 and arrays["image_bytes"].dtype == object
    assert arrays["image_bytes"][0].startswith(b"\x89PNG")


def test_runners_take_and_give_numpy_with_outputs_in_a_stable_order(mnist):
    image = (SAMPLES / "images" / "koala.jpg").read_bytes()
    outputs = mnist.runners["predict_image"]({"image_bytes": np.array([image, image],
                                                                       dtype=object)})
    assert list(outputs) == ["classes", "probabilities", "scores"]
    assert outputs["probabilities"].shape == (2, 10)
    summary = mnist.signatures["predict_image"].summary(outputs)
    assert list(summary) == ["classes", "scores"]


def test_input_the_graph_rejects_is_a_400_without_internals(mnist):
    with pytest.raises(InvalidInput) as caught:
        mnist.runners["predict_image"]({"image_bytes": np.array([b"not an image"],
                                                                dtype=object)})
    message = caught.value.message
    assert message.startswith("the model rejected the input: ")
    assert "Graph execution error" not in message and "[[" not in message


def test_an_export_without_declarations_warms_up_on_zeros_and_keeps_the_old_summary(
        models_dir, tmp_path):
    bare = tmp_path / "mnist" / "1"
    shutil.copytree(models_dir / "mnist" / "1", bare)
    shutil.rmtree(bare / "assets.extra")
    loaded = loader.load(bare)
    arrays, rows = _warm_ups(loaded)["serving_default"]
    assert rows == 1 and not arrays["image_input"].any()
    assert _warm_ups(loaded)["predict_image"][0]["image_bytes"].tolist() == [b""]
    image = loaded.signatures["predict_image"]
    assert image.example is None and image.summary_outputs is None
    outputs = {"classes": 1, "probabilities": 2, "scores": 3}
    assert image.summary(outputs) == {"classes": 1, "scores": 3}  # the full vector left out


def test_a_summary_naming_an_unknown_output_is_refused(models_dir, tmp_path):
    broken = tmp_path / "mnist" / "1"
    shutil.copytree(models_dir / "mnist" / "1", broken)
    (broken / "assets.extra" / "summary_outputs.json").write_text(
        json.dumps({"predict_image": ["classes", "nope"]}))
    with pytest.raises(ValueError, match="summary outputs"):
        loader.load(broken)


@pytest.mark.parametrize(("raw", "clean"), [
    ("Graph execution error:\n\nDetected at node map/while/DecodeImage defined at (most recent "
     "call last):\n  File \"/srv/app.py\", line 3\nUnknown image file format.\n\t "
     "[[{{node map/while/DecodeImage}}]] [Op:__inference_fn_123]",
     "not an image file the model can decode (JPEG, PNG, GIF, BMP or WebP)"),
    ("Unknown image file format. One of JPEG, JPEG XL, PNG, GIF, BMP, WebP required.\n\t "
     "[[{{node map/while/decode_image/DecodeImage}}]]",
     "not an image file the model can decode (JPEG, PNG, GIF, BMP or WebP)"),
    ("Graph execution error:\n\nDetected at node m/n defined at:\nbad shape [2]", "bad shape [2]"),
    ("Unsuccessful TensorSliceReader constructor: failed to find /srv/models/m/1/variables",
     "Unsuccessful TensorSliceReader constructor: failed to find <path>"),
    ("", ""),
])
def test_tensorflow_errors_are_cleaned_for_clients(raw, clean):
    assert loader.clean_error(RuntimeError(raw)) == clean


def test_the_server_log_keeps_the_failing_node():
    raw = "Graph execution error:\n\nDetected at node m/n defined at:\nbad shape [2]"
    assert loader.clean_error(RuntimeError(raw), with_node=True) == "bad shape [2] (at node m/n)"


def test_every_signature_is_called_flat_and_answers_as_a_keyword_call(models_dir):
    """The flat call skips TensorFlow's argument binding; it must apply to every family's
    signatures (dense inputs: floats, image bytes, text) and change no output."""
    for model in sorted(p for p in models_dir.iterdir() if p.is_dir()):
        loaded = loader.load(model / "1")
        for name, arrays, _ in loaded.warmup_inputs:
            function = loaded.handle.signatures[name]
            flat = loader.flat_call(function)
            assert flat is not None, f"{model.name}/{name} fell back to the keyword call"
            expected = loader.keyword_call(function)(arrays)
            got = flat(arrays)
            assert sorted(got) == sorted(expected)
            for output in expected:
                np.testing.assert_array_equal(got[output].numpy(), expected[output].numpy())


def test_a_signature_with_a_composite_input_keeps_the_keyword_call():
    import tensorflow as tf

    class Ragged(tf.Module):
        @tf.function(input_signature=[tf.RaggedTensorSpec([None, None], tf.int64)])
        def serve(self, ids):
            return {"total": tf.reduce_sum(ids, axis=1)}

    function = Ragged().serve.get_concrete_function()
    assert loader.flat_call(function) is None
