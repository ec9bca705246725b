"""The training profile each export ships for prediction monitoring (app.monitoring).

A family says, per signature, which summaries describe it (the helpers below choose their
bins from the validation data) and hands over the validation rows in that signature's own
input form; `write_profile` runs the exported signature on them and stores the bin counts of
inputs and outputs in `assets.extra/monitoring_profile.json` (format: app.monitoring.profile).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.monitoring import profile as profile_format
from app.monitoring.summaries import Summary, linear_edges, quantile_edges, top_score

CONFIDENCE_FLOOR = 0.5
OOV_EDGES = [0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5]
CHUNK_ROWS = 256
VOCABULARY_FILE = "monitoring_vocabulary.txt"


@dataclass
class MonitoredSignature:
    """One signature's validation inputs (its own input form) and its summaries."""

    inputs: dict[str, np.ndarray]
    summaries: list[Summary]


@dataclass
class DataProfile:
    data: str  # what the rows are, for people
    signatures: dict[str, MonitoredSignature]
    files: dict[str, bytes] = field(default_factory=dict)  # beside the profile (vocabulary)


def image_summaries(name: str, images: np.ndarray, low: float, high: float) -> list[Summary]:
    """Pixel intensities over the input's range and each image's mean brightness."""
    means = images.reshape(len(images), -1).mean(axis=1)
    return [Summary(f"{name}.pixels", "input", name, "values", linear_edges(low, high)),
            Summary(f"{name}.brightness", "input", name, "row_mean", quantile_edges(means))]


def token_id_summaries(name: str, ids: np.ndarray, pad: int, start: int,
                       oov: int) -> list[Summary]:
    """Tokens per row and the out-of-vocabulary rate of an input of word ids."""
    params = {"pad": pad, "start": start, "oov": oov}
    lengths = np.count_nonzero(ids != pad, axis=1)
    return [Summary(f"{name}.tokens", "input", name, "token_count", quantile_edges(lengths),
                    params=params),
            Summary(f"{name}.oov_rate", "input", name, "oov_rate", list(OOV_EDGES),
                    params=params)]


def text_summaries(name: str, texts: np.ndarray, pattern: str,
                   vocabulary: set[str]) -> tuple[list[Summary], dict[str, bytes]]:
    """Words per text and the out-of-vocabulary rate of raw text, split by `pattern` after
    lower-casing; the vocabulary goes beside the profile."""
    params = {"pattern": pattern, "vocabulary": VOCABULARY_FILE}
    words = frozenset(w.encode() for w in vocabulary)
    tokens = Summary(f"{name}.tokens", "input", name, "text_tokens", params=params,
                     _vocabulary=words)
    oov = Summary(f"{name}.oov_rate", "input", name, "text_oov_rate", list(OOV_EDGES),
                  params=params, _vocabulary=words)
    lengths, _ = tokens._tokenize(texts)
    tokens.edges = quantile_edges(lengths)
    return [tokens, oov], {VOCABULARY_FILE: b"\n".join(sorted(words)) + b"\n"}


def output_summaries(output: str, labels: list[str]) -> list[Summary]:
    """Class, top score and low-confidence share of a probabilities output; the top score's
    bins are set by `write_profile` at the validation answers' deciles (a barely trained or
    many-class model answers within a narrow range that fixed bins would lump together)."""
    summaries = profile_format.output_summaries(output, labels, CONFIDENCE_FLOOR)
    for summary in summaries:
        if summary.kind == "confidence":
            summary.edges = []
    return summaries


def write_profile(path: Path, profile: DataProfile,
                  functions: dict[str, Callable[[dict], dict]]) -> None:
    """Run each monitored signature's function on its validation rows and write the counts."""
    written = {}
    for name, monitored in profile.signatures.items():
        rows = len(next(iter(monitored.inputs.values())))
        chunks = []
        for begin in range(0, rows, CHUNK_ROWS):
            inputs = {k: v[begin:begin + CHUNK_ROWS] for k, v in monitored.inputs.items()}
            outputs = {k: np.asarray(v) for k, v in functions[name](inputs).items()}
            chunks.append((inputs, outputs))
        for summary in monitored.summaries:
            if summary.kind == "confidence" and not summary.edges:
                scores = np.concatenate([top_score(out[summary.tensor]) for _, out in chunks])
                summary.edges = quantile_edges(scores)
        counts = {s.name: np.zeros(s.bins, np.int64) for s in monitored.summaries}
        for inputs, outputs in chunks:
            memo: dict = {}
            for summary in monitored.summaries:
                source = inputs if summary.source == "input" else outputs
                counts[summary.name] += summary.counts(source[summary.tensor], memo)
        written[name] = (rows, monitored.summaries, counts)
    profile_format.write(path / profile_format.PROFILE_FILE, profile.data, written)
    for file_name, content in profile.files.items():
        (path / file_name).write_bytes(content)
