"""Pre/post-processing that is exported inside the SavedModels' graphs.

Clients of the raw-input signatures send what they have (image file bytes, review text), so
decoding, resizing, tokenizing and top-k labelling run in TensorFlow ops here. The text
tokenizer also has a pure-Python twin used to build the training data; tests check that both
give identical ids on real reviews.

Text rule (matches Keras' IMDB word index, whose words are lower-case ASCII with apostrophes,
e.g. "don't", and "br" from `<br />`): lower-case ASCII letters, replace every run of bytes
outside `[a-z0-9']` by a space, split on spaces; id = rank + 3 for words ranked within the
vocabulary, 1 = start, 2 = out-of-vocabulary, 0 = padding; pre-padding and pre-truncation to
`maxlen` (keep the end of long reviews), as `keras.utils.pad_sequences` does by default.
"""

from __future__ import annotations

import re

import numpy as np
import tensorflow as tf

PAD, START, OOV, INDEX_FROM = 0, 1, 2, 3
NON_WORD = "[^a-z0-9']+"  # what splits words, after lower-casing
_NON_WORD_BYTES = re.compile(NON_WORD.encode())


# images -----------------------------------------------------------------------------------


def decode_images(image_bytes: tf.Tensor, size: tuple[int, int], channels: int) -> tf.Tensor:
    """JPEG/PNG/GIF/BMP bytes [N] -> float32 pixels [N, h, w, channels] in 0..255.

    Bilinear resize with antialiasing, so large photos shrink smoothly (close to PIL's
    bilinear); animated GIFs contribute their first frame.
    """

    def decode_one(data: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(data, channels=channels, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), size, antialias=True)
        return tf.ensure_shape(image, [*size, channels])

    return tf.map_fn(decode_one, image_bytes,
                     fn_output_signature=tf.TensorSpec([*size, channels], tf.float32))


def top_classes(probabilities: tf.Tensor, labels: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Top-k label strings and their scores, best first (`decode_predictions` in the graph)."""
    scores, indices = tf.math.top_k(probabilities, k=k)
    return tf.gather(labels, indices), scores


# text -------------------------------------------------------------------------------------


def vocabulary(word_index: dict[str, int], num_words: int) -> dict[str, int]:
    """Word -> id for the words that fit in `num_words` ids (Keras' index_from=3 convention)."""
    return {w: r + INDEX_FROM for w, r in word_index.items() if r + INDEX_FROM < num_words}


def tokenize(text: str, vocab: dict[str, int], maxlen: int) -> np.ndarray:
    """Python twin of `TextEncoder`: one review -> int32 ids [maxlen]."""
    words = _NON_WORD_BYTES.sub(b" ", text.encode("utf-8").lower()).split()
    ids = [START] + [vocab.get(w.decode(), OOV) for w in words]
    ids = ids[-maxlen:]
    return np.asarray([PAD] * (maxlen - len(ids)) + ids, dtype=np.int32)


def tokenize_all(texts: list[str], vocab: dict[str, int], maxlen: int) -> np.ndarray:
    return np.stack([tokenize(t, vocab, maxlen) for t in texts])


class TextEncoder(tf.Module):
    """In-graph tokenizer: review strings [N] -> int32 ids [N, maxlen]."""

    def __init__(self, vocab: dict[str, int], maxlen: int):
        super().__init__(name="text_encoder")
        self.maxlen = maxlen
        words = sorted(vocab)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(words), tf.constant([vocab[w] for w in words], tf.int64)),
            default_value=OOV)

    def __call__(self, texts: tf.Tensor) -> tf.Tensor:
        cleaned = tf.strings.regex_replace(tf.strings.lower(texts), NON_WORD, " ")
        words = tf.strings.split(cleaned)  # ragged [N, None]; split() drops empty strings
        ids = tf.ragged.map_flat_values(self.table.lookup, words)
        start = tf.ones([ids.nrows(), 1], tf.int64) * START
        ids = tf.concat([start, ids], axis=1)[:, -self.maxlen:]
        # to_tensor pads at the end; reverse each row's real part and then the whole row to
        # move the padding to the front.
        lengths = ids.row_lengths()
        post_padded = ids.to_tensor(PAD, shape=[None, self.maxlen])
        reversed_rows = tf.reverse_sequence(post_padded, lengths, seq_axis=1, batch_axis=0)
        return tf.cast(tf.reverse(reversed_rows, axis=[1]), tf.int32)
