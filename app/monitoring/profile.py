"""The training profile: what a signature's inputs and outputs looked like on validation data.

Written by training/ into the version's `assets.extra/monitoring_profile.json` (TensorFlow
Serving ignores it):

    {"format": "tfserve-monitoring-profile/1",
     "data": "what the rows were (MNIST test split, 2,000 images)",
     "signatures": {"serving_default": {
         "rows": 2000,
         "summaries": [{"name": "image_input.pixels", "source": "input",
                        "tensor": "image_input", "kind": "values",
                        "edges": [0.0, 0.1, ...], "counts": [0, 1441710, ...]}, ...]}}}

`kind`, `edges`, `labels` and the kind's parameters are app.monitoring.summaries'; `counts` are
the validation data's bin counts. A text summary names its vocabulary file, one word per
line, beside the profile. A signature without a profile (a foreign SavedModel, an export from
before profiles) gets `baseline_summaries`: its probability-like outputs, rated against the
first window the server sees.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.models.signatures import SignatureInfo
from app.monitoring.summaries import CONFIDENCE_EDGES, Summary

PROFILE_FILE = "monitoring_profile.json"
FORMAT = "tfserve-monitoring-profile/1"


@dataclass
class SignatureProfile:
    """A signature's summaries and, from training, their reference counts."""

    summaries: list[Summary]
    reference: dict[str, np.ndarray] | None  # None: the first window will be the baseline
    rows: int = 0
    data: str = ""


def read(version_path: Path) -> dict[str, SignatureProfile]:
    """The profiles an export ships, by signature ({} without a profile file)."""
    folder = version_path / "assets.extra"
    path = folder / PROFILE_FILE
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text())
    if doc.get("format") != FORMAT:
        raise ValueError(f"{path.name}: format {doc.get('format')!r}, expected {FORMAT!r}")
    profiles = {}
    for name, entry in doc["signatures"].items():
        summaries = [Summary.from_json(s, folder) for s in entry["summaries"]]
        reference = {}
        for summary, stored in zip(summaries, entry["summaries"], strict=True):
            counts = np.asarray(stored["counts"], dtype=np.int64)
            if len(counts) != summary.bins:
                raise ValueError(f"{path.name}: {summary.name} has {len(counts)} counts for "
                                 f"{summary.bins} bins")
            reference[summary.name] = counts
        profiles[name] = SignatureProfile(summaries, reference, int(entry["rows"]),
                                          str(doc.get("data", "")))
    return profiles


def baseline_summaries(info: SignatureInfo, floor: float,
                       labels: list[str] | None = None) -> list[Summary]:
    """What can be watched on any model: the class and top score of each float output
    shaped [rows, classes] (classes >= 2), classes named by the export's labels when they
    match in number, else by index."""
    summaries = []
    for name, tensor in info.outputs.items():
        shape = tensor.shape
        if (not tensor.dtype.startswith("float") or shape is None or len(shape) != 2
                or shape[1] is None or shape[1] < 2):
            continue
        names = list(labels) if labels and len(labels) == shape[1] else [
            str(i) for i in range(shape[1])]
        summaries += output_summaries(name, names, floor)
    return summaries


def output_summaries(output: str, labels: list[str], floor: float) -> list[Summary]:
    """The predicted class, the top score and the share under `floor` of a probabilities
    output."""
    return [Summary(f"{output}.class", "output", output, "class", labels=labels),
            Summary(f"{output}.confidence", "output", output, "confidence",
                    edges=list(CONFIDENCE_EDGES)),
            Summary(f"{output}.low_confidence", "output", output, "low_confidence",
                    params={"floor": floor})]


def write(path: Path, data: str, signatures: dict[str, tuple[int, list[Summary],
                                                             dict[str, np.ndarray]]]) -> None:
    """Write a profile: per signature (rows, summaries, counts by summary name)."""
    doc: dict[str, Any] = {"format": FORMAT, "data": data, "signatures": {}}
    for name, (rows, summaries, counts) in signatures.items():
        doc["signatures"][name] = {"rows": rows, "summaries": [
            {**s.to_json(), "counts": [int(c) for c in counts[s.name]]} for s in summaries]}
    path.write_text(json.dumps(doc, indent=1) + "\n")
