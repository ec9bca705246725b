"""The summaries a profile names, computed the same way in training and in the server.

A summary turns one batch's tensor into bin counts: numpy over the whole batch at once, never
a Python loop per row (text, which must be tokenized, is the exception, and runs in the
monitoring thread). Histogram bins are given by their finite inner `edges`: `len(edges) + 1`
bins, the first holding everything below `edges[0]` and the last everything from `edges[-1]`
up, so values outside the training range (raw 0-255 pixels where 0-1 was trained) land in a
bin of their own instead of vanishing.

Kinds (`Summary.kind`):
  values          histogram of the tensor's values (about VALUES_PER_BATCH of them, strided)
  row_mean        histogram of each row's mean value (an image's mean brightness)
  token_count     token ids: per row, the ids that are not `pad`
  oov_rate        token ids: per row, the share of ids equal to `oov` among its tokens
  text_tokens     raw text: per row, the words after `pattern` (lower-cased) splits it
  text_oov_rate   raw text: per row, the share of those words outside `vocabulary`
  class           a probabilities output: the predicted class (argmax; p >= 0.5 for a single
                  probability), one bin per label
  confidence      a probabilities output: histogram of the top score (max(p, 1 - p) for one)
  low_confidence  a probabilities output: two bins, top score below `floor` and not
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

VALUES_PER_BATCH = 1024
KINDS = ("values", "row_mean", "token_count", "oov_rate", "text_tokens", "text_oov_rate",
         "class", "confidence", "low_confidence")
CONFIDENCE_EDGES = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]


@dataclass
class Summary:
    """One summary of one tensor: what it measures and its bins."""

    name: str
    source: str  # "input" or "output"
    tensor: str
    kind: str
    edges: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # class bins' names
    params: dict[str, Any] = field(default_factory=dict)  # pad, oov, pattern, floor...
    _vocabulary: frozenset[bytes] | None = field(default=None, repr=False)

    @property
    def bins(self) -> int:
        if self.kind == "class":
            return len(self.labels)
        if self.kind == "low_confidence":
            return 2
        return len(self.edges) + 1

    def bin_names(self) -> list[str]:
        """What each bin holds, for people: a label, or a value range."""
        if self.kind == "class":
            return list(self.labels)
        if self.kind == "low_confidence":
            floor = self.params["floor"]
            return [f"< {floor:g}", f">= {floor:g}"]
        edges = _distinct_labels(self.edges)
        return ([f"< {edges[0]}"] + [f"{a}-{b}" for a, b in zip(edges, edges[1:], strict=False)]
                + [f">= {edges[-1]}"])

    def to_json(self) -> dict[str, Any]:
        doc = {"name": self.name, "source": self.source, "tensor": self.tensor,
               "kind": self.kind}
        if self.edges:
            doc["edges"] = self.edges
        if self.labels:
            doc["labels"] = self.labels
        return {**doc, **self.params}

    @classmethod
    def from_json(cls, doc: dict[str, Any], folder: Path | None = None) -> Summary:
        """A summary as a profile stores it; `folder` holds a text summary's vocabulary."""
        core = {"name", "source", "tensor", "kind", "edges", "labels", "counts"}
        summary = cls(doc["name"], doc["source"], doc["tensor"], doc["kind"],
                      [float(e) for e in doc.get("edges", [])], list(doc.get("labels", [])),
                      {k: v for k, v in doc.items() if k not in core})
        if summary.kind not in KINDS:
            raise ValueError(f"summary {summary.name!r}: unknown kind {summary.kind!r}")
        if summary.kind in ("text_tokens", "text_oov_rate") and folder is not None:
            words = (folder / summary.params["vocabulary"]).read_bytes().split(b"\n")
            summary._vocabulary = frozenset(w for w in words if w)
        return summary

    def counts(self, batch: np.ndarray, memo: dict | None = None) -> np.ndarray:
        """This batch's bin counts (int64, `self.bins` long)."""
        memo = {} if memo is None else memo
        if self.kind == "class":
            return np.bincount(predicted_class(batch), minlength=self.bins)[:self.bins]
        if self.kind == "low_confidence":
            below = int(np.count_nonzero(self._top(batch, memo) < self.params["floor"]))
            return np.array([below, len(batch) - below], dtype=np.int64)
        return histogram(self._values(batch, memo), self._edge_array)

    @functools.cached_property
    def _edge_array(self) -> np.ndarray:
        return np.asarray(self.edges, dtype=np.float64)

    def _values(self, batch: np.ndarray, memo: dict) -> np.ndarray:
        kind = self.kind
        if kind == "values":
            flat = np.asarray(batch).reshape(-1)
            if len(flat) <= VALUES_PER_BATCH:
                return flat
            return flat[::_stride(len(flat), len(flat) // max(len(batch), 1))]
        if kind == "row_mean":
            return np.asarray(batch).reshape(len(batch), -1).mean(axis=1)
        if kind in ("token_count", "oov_rate"):
            ids = np.asarray(batch).reshape(len(batch), -1)
            tokens = np.count_nonzero(ids != self.params.get("pad", 0), axis=1)
            if kind == "token_count":
                return tokens
            ignored = np.isin(ids, [self.params.get("pad", 0), self.params.get("start", -1)])
            words = np.count_nonzero(~ignored, axis=1)
            return np.count_nonzero(ids == self.params["oov"], axis=1) / np.maximum(words, 1)
        if kind in ("text_tokens", "text_oov_rate"):
            key = ("text", self.tensor)
            if key not in memo:
                memo[key] = self._tokenize(batch)
            words, oov = memo[key]
            return words if kind == "text_tokens" else oov / np.maximum(words, 1)
        if kind == "confidence":
            return self._top(batch, memo)
        raise ValueError(f"summary {self.name!r} has no values of kind {kind!r}")

    def _top(self, batch: np.ndarray, memo: dict) -> np.ndarray:
        key = ("top", self.tensor)
        if key not in memo:
            memo[key] = top_score(batch)
        return memo[key]

    def values(self, batch: np.ndarray, memo: dict) -> np.ndarray:
        """What a histogram summary bins, per row or per value (the top score's sum)."""
        return self._values(batch, memo)

    def _tokenize(self, texts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Words and out-of-vocabulary words per text, by the profile's rule."""
        pattern = re.compile(self.params["pattern"].encode())
        vocabulary = self._vocabulary or frozenset()
        words = np.zeros(len(texts), dtype=np.int64)
        oov = np.zeros(len(texts), dtype=np.int64)
        for i, text in enumerate(np.asarray(texts).reshape(-1)):
            raw = text if isinstance(text, bytes) else str(text).encode()
            tokens = pattern.sub(b" ", raw.lower()).split()
            words[i] = len(tokens)
            oov[i] = sum(1 for t in tokens if t not in vocabulary)
        return words, oov


@functools.lru_cache(maxsize=256)
def _stride(values: int, row: int) -> int:
    """A step that takes about VALUES_PER_BATCH of `values` and visits every position of a
    row: prime to the row's length (every 196th value of 784-pixel rows would always be the
    same column, the image's empty border)."""
    step = max(1, values // VALUES_PER_BATCH)
    while step > 1 and math.gcd(step, row) != 1:
        step -= 1
    return step


def _distinct_labels(edges: list[float]) -> list[str]:
    """The edges written with as few digits as keep neighbours apart (0.9997, 0.99994)."""
    for digits in range(3, 10):
        labels = [f"{e:.{digits}g}" for e in edges]
        if len(set(labels)) == len(labels):
            return labels
    return [repr(e) for e in edges]


def histogram(values: np.ndarray, edges: list[float] | np.ndarray) -> np.ndarray:
    """Counts of `values` in the bins `edges` bound (see the module docstring); NaN counts in
    the last bin, with the values beyond every edge."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    where = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="right")
    return np.bincount(where, minlength=len(edges) + 1).astype(np.int64)


def predicted_class(probabilities: np.ndarray) -> np.ndarray:
    p = np.asarray(probabilities)
    if p.ndim == 1 or p.shape[-1] == 1:
        return (p.reshape(len(p)) >= 0.5).astype(np.int64)
    return np.argmax(p.reshape(len(p), -1), axis=1)


def top_score(probabilities: np.ndarray) -> np.ndarray:
    p = np.asarray(probabilities)
    if p.ndim == 1 or p.shape[-1] == 1:
        p = p.reshape(len(p))
        return np.maximum(p, 1 - p)
    return p.reshape(len(p), -1).max(axis=1)


def linear_edges(low: float, high: float, bins: int = 10) -> list[float]:
    """`bins` equal bins over [low, high] (plus the two open ones outside); `high` itself
    stays inside (a white pixel is 1.0 exactly)."""
    edges = [float(x) for x in np.linspace(low, high, bins + 1)]
    edges[-1] = float(np.nextafter(high, np.inf))
    return edges


def quantile_edges(values: np.ndarray, bins: int = 10) -> list[float]:
    """Edges at the reference values' quantiles: equally filled bins, the usual PSI choice
    for a long-tailed value (review lengths); repeated edges merged."""
    qs = np.quantile(np.asarray(values, dtype=np.float64), np.linspace(0, 1, bins + 1)[1:-1])
    return [float(x) for x in np.unique(qs)]
