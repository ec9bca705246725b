"""IMDB review sentiment: embedding + LSTM + sigmoid, trained from the raw aclImdb reviews.

Reviews are tokenized with Keras' IMDB word index (see `training.preprocessing` for the exact
rule). Signatures: `serving_default` takes `token_ids` int32 [-1, maxlen] (pre-padded ids) and
returns `probability` [-1]; `predict_text` takes raw review strings `text` [-1] and returns
`probability` (positive sentiment) and `label` ("positive" / "negative").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from training.data import imdb_word_index, load_imdb_reviews
from training.export import Export, Signature
from training.fitting import fit, hold_out
from training.monitoring import (
    DataProfile,
    MonitoredSignature,
    output_summaries,
    text_summaries,
    token_id_summaries,
)
from training.preprocessing import NON_WORD, OOV, PAD, START, TextEncoder, tokenize_all, vocabulary

NAME = "imdb_sentiment"
LABELS = ["negative", "positive"]
PROFILE_PER_CLASS = 500  # test reviews per class the monitoring profile describes
EXAMPLE_REVIEW = ("One of the best films I have seen this year: a clever story, wonderful "
                  "acting and a soundtrack I still hum. Highly recommended.")


@dataclass(frozen=True)
class Profile:
    train_per_class: int | None  # None = all 12,500 per class
    test_per_class: int | None
    epochs: int
    maxlen: int = 500
    num_words: int = 10_000
    batch_size: int = 128
    val_per_class: int = 0  # held out of train/ for early stopping; 0: validate on test/


PROFILES = {"tiny": Profile(100, 20, 1, maxlen=80),
            "quick": Profile(5_000, 2_500, 4, maxlen=200),
            "full": Profile(None, None, 6, val_per_class=1_250)}


def build_model(num_words: int) -> keras.Model:
    model = keras.Sequential([
        keras.Input((None,), dtype="int32", name="token_ids"),
        keras.layers.Embedding(num_words, 32),
        keras.layers.LSTM(32),
        keras.layers.Dense(1, activation="sigmoid"),
    ], name=NAME)
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def train(profile: Profile, data: Path | None = None, verbose: int = 2) -> Export:
    vocab = vocabulary(imdb_word_index(), profile.num_words)
    train_texts, y_train = load_imdb_reviews("train", profile.train_per_class, data)
    test_texts, y_test = load_imdb_reviews("test", profile.test_per_class, data)
    x_train = tokenize_all(train_texts, vocab, profile.maxlen)
    x_test = tokenize_all(test_texts, vocab, profile.maxlen)
    test = None
    if profile.val_per_class:
        (x_train, y_train), (x_val, y_val) = hold_out((x_train, y_train), profile.val_per_class)
        test = x_test, y_test
    else:
        x_val, y_val = x_test, y_test
    model = build_model(profile.num_words)
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=2,
                                               restore_best_weights=True)]
    history, metrics = fit(model, (x_train, y_train), (x_val, y_val), train_size=len(y_train),
                           epochs=profile.epochs, batch_size=profile.batch_size,
                           verbose=verbose, callbacks=callbacks, test=test, best_by="val_loss")
    metrics.update(maxlen=profile.maxlen, num_words=profile.num_words)
    encoder = TextEncoder(vocab, profile.maxlen)
    examples = {
        "serving_default": {"instances": [{"token_ids": x_val[0].tolist()}]},
        "predict_text": {"instances": [{"text": EXAMPLE_REVIEW}]},
    }
    return Export(NAME, model, signatures(model, encoder), LABELS, metrics, history,
                  track=[encoder.table], examples=examples, card=card(encoder.maxlen),
                  profile=monitoring_profile(vocab, profile.maxlen, data))


def monitoring_profile(vocab: dict[str, int], maxlen: int, data: Path | None) -> DataProfile:
    """The monitoring profile, from the first PROFILE_PER_CLASS test reviews of each class."""
    texts, _ = load_imdb_reviews("test", PROFILE_PER_CLASS, data)
    raw = np.array([t.encode() for t in texts], dtype=object)
    ids = tokenize_all(texts, vocab, maxlen)
    text_watch, files = text_summaries("text", raw, NON_WORD, set(vocab))
    return DataProfile(
        f"IMDB test reviews, the first {PROFILE_PER_CLASS} of each class", {
            "serving_default": MonitoredSignature(
                {"token_ids": ids},
                token_id_summaries("token_ids", ids, PAD, START, OOV)
                + output_summaries("probability", LABELS)),
            "predict_text": MonitoredSignature(
                {"text": raw}, text_watch + output_summaries("probability", LABELS)),
        }, files)


def card(maxlen: int) -> dict:
    return {
        "task": "movie review sentiment: English text -> the probability that it is positive",
        "data": {"source": "IMDB reviews (keras.datasets.imdb): 25,000 training and 25,000 "
                           "test reviews, half positive"},
        "inputs": {
            "serving_default": {"token_ids": (
                f"{maxlen} word ids per review in Keras' IMDB index (1 = start, 2 = unknown, "
                "ids offset by 3), left-padded with 0")},
            "predict_text": {"text": (
                "the raw review text; lower-cased, stripped of punctuation and cut to its "
                f"last {maxlen - 1} words in the graph")},
        },
    }


def signatures(model: keras.Model, encoder: TextEncoder) -> dict[str, Signature]:
    labels = tf.constant(LABELS)

    def probability(token_ids):
        return tf.reshape(model(token_ids, training=False), [-1])

    def serving_default(token_ids):
        return {"probability": probability(token_ids)}

    def predict_text(text):
        positive = probability(encoder(text))
        label = tf.gather(labels, tf.cast(positive >= 0.5, tf.int32))
        return {"probability": positive, "label": label}

    return {
        "serving_default": Signature(serving_default, [
            tf.TensorSpec([None, encoder.maxlen], tf.int32, name="token_ids")]),
        "predict_text": Signature(predict_text, [tf.TensorSpec([None], tf.string, name="text")],
                                  summary=["probability", "label"]),
    }
