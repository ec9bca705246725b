"""In-graph preprocessing equals its Python-side definition."""

from __future__ import annotations

import io

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.conftest import SAMPLES
from training.data import imdb_word_index
from training.preprocessing import (
    OOV,
    START,
    TextEncoder,
    decode_images,
    tokenize,
    tokenize_all,
    top_classes,
    vocabulary,
)

MAXLEN = 60


@pytest.fixture(scope="module")
def vocab(offline_data) -> dict[str, int]:
    return vocabulary(imdb_word_index(), num_words=10_000)


def real_reviews() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted((SAMPLES / "reviews").glob("*.txt"))]


EDGE_CASES = [
    "",
    "!!! ... ???",
    "The BEST film.<br /><br />I don't know why it isn't famous.",
    "Caf\u00e9 clich\u00e9 na\u00efve \u2014 r\u00e9sum\u00e9 \U0001f600 emoji",
    "tabs\tand\nnewlines   and    spaces",
    "zzzzunknownword qqqqanother the",
    "word " * 200,  # longer than MAXLEN: keeps the end
]


def test_in_graph_tokenizer_equals_python_tokenizer_on_real_reviews(vocab):
    texts = real_reviews() + EDGE_CASES
    assert len(texts) >= 10 + len(EDGE_CASES)
    in_graph = TextEncoder(vocab, MAXLEN)(tf.constant(texts)).numpy()
    np.testing.assert_array_equal(in_graph, tokenize_all(texts, vocab, MAXLEN))


def test_tokenizer_follows_keras_imdb_conventions(vocab):
    word_index = imdb_word_index()
    ids = tokenize("The movie, the MOVIE! zzzzunknownword", vocab, maxlen=8)
    the, movie = word_index["the"] + 3, word_index["movie"] + 3
    np.testing.assert_array_equal(ids, [0, 0, START, the, movie, the, movie, OOV])
    # Pre-padding and pre-truncation, as keras.utils.pad_sequences does by default.
    words = [START] + [vocab.get("word", OOV)] * 100
    np.testing.assert_array_equal(tokenize("word " * 100, vocab, 20),
                                  keras.utils.pad_sequences([words], maxlen=20)[0])
    # Words ranked beyond the vocabulary are out-of-vocabulary, not dropped.
    rare = next(w for w, r in word_index.items() if r + 3 >= 10_000 and w.isalpha())
    assert tokenize(rare, vocab, 3)[-1] == OOV


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_decode_images_is_lossless_at_native_size():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    decoded = decode_images(tf.constant([png_bytes(i) for i in images]), (32, 32), 3)
    np.testing.assert_array_equal(decoded.numpy(), images.astype(np.float32))


def test_decode_images_converts_to_grayscale_like_pil():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(28, 28, 3), dtype=np.uint8)
    decoded = decode_images(tf.constant([png_bytes(rgb)]), (28, 28), 1).numpy()[0, ..., 0]
    pil_gray = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32)
    assert np.abs(decoded - pil_gray).max() <= 1.0  # rounding of the luma weights


@pytest.mark.parametrize("name", ["umbrella.jpg", "banana.jpg", "macaw.jpeg"])
def test_resize_of_real_photos_is_close_to_keras_load_img(name):
    data = (SAMPLES / "images" / name).read_bytes()
    ours = decode_images(tf.constant([data]), (299, 299), 3).numpy()[0]
    theirs = keras.utils.img_to_array(
        keras.utils.load_img(SAMPLES / "images" / name, target_size=(299, 299),
                             interpolation="bilinear"))
    assert np.abs(ours - theirs).mean() < 4.0  # different antialias filters, same picture


def test_top_classes_matches_numpy_argsort():
    rng = np.random.default_rng(2)
    probabilities = rng.dirichlet(np.ones(10), size=4).astype(np.float32)
    labels = [f"class{i}" for i in range(10)]
    classes, scores = top_classes(tf.constant(probabilities), tf.constant(labels), 3)
    for row, got_classes, got_scores in zip(probabilities, classes.numpy(), scores.numpy(),
                                            strict=True):
        best = row.argsort()[-3:][::-1]
        assert [c.decode() for c in got_classes] == [labels[i] for i in best]
        np.testing.assert_allclose(got_scores, row[best])
