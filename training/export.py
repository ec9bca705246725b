"""Atomic, versioned export into the model repository (TensorFlow Serving's layout).

`models/<name>/<version>/` holds `saved_model.pb`, `variables/`, `assets/labels.txt`, plus our
own `metrics.json`, `training_history.png`, `assets.extra/examples.json` (a request example per
signature), `assets.extra/summary_outputs.json` (per signature, the outputs that sum a
prediction up for people: what upload routes and the scoring CLI show),
`assets.extra/model_card.json` (what people need to read the model: its task, data, what each
input expects, and a warning when its predictions are not to be trusted),
`assets.extra/monitoring_profile.json` (the validation data's summaries that prediction
monitoring compares live traffic with: training.monitoring),
`assets.extra/tf_serving_warmup_requests` (those examples as TF Serving's warm-up records, a
TFRecord of PredictionLog protos: TF Serving and tfserve both warm the model up with them)
and, for trained models, `model.keras` (the Keras model that transfer learning starts from).
TensorFlow Serving ignores the other extra files.

A version is written into a hidden temporary folder beside its final place and renamed into
place only when complete, so a server polling the repository never sees half a model.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from training.monitoring import DataProfile, write_profile
from training.report import plot_history


@dataclass
class Signature:
    """One exported signature: a function of named tensors returning a dict of named tensors."""

    fn: Callable[..., dict[str, tf.Tensor]]
    inputs: list[tf.TensorSpec]
    summary: list[str] | None = None  # the outputs people want to see (None: all of them)


@dataclass
class Export:
    """Everything a family hands over to be written as one model version."""

    name: str
    model: keras.Model
    signatures: dict[str, Signature]
    labels: list[str]
    metrics: dict[str, Any]
    history: dict[str, list[float]] | None = None
    track: list[Any] = field(default_factory=list)  # extra resources (lookup tables)
    keep_keras_model: bool = True  # write model.keras, the starting point for fine-tuning
    # One request per signature, {"instances": [...]} in the tfdeploy row format: the server
    # warms up with it and shows it in its API docs (assets.extra/examples.json).
    examples: dict[str, dict] = field(default_factory=dict)
    # The model card's text (assets.extra/model_card.json): {"task": ..., "data": {...},
    # "inputs": {signature: {input: what it expects}}, "warning": ...}; the server shows it in
    # its API docs and at /ui, and a warning on every answer.
    card: dict[str, Any] = field(default_factory=dict)
    # What prediction monitoring compares live traffic with: validation rows per signature
    # and their summaries (assets.extra/monitoring_profile.json, training.monitoring).
    profile: DataProfile | None = None


def versions(model_dir: Path) -> list[int]:
    """The complete versions in `models/<name>/`, ascending (hidden temp folders excluded)."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def latest_version(model_dir: Path) -> Path | None:
    found = versions(model_dir)
    return model_dir / str(found[-1]) if found else None


def write(export: Export, models_dir: Path, version: int | None = None) -> Path:
    """Write `export` as `models_dir/<name>/<version>` (next free version by default)."""
    model_dir = models_dir / export.name
    model_dir.mkdir(parents=True, exist_ok=True)
    if version is None:
        version = (versions(model_dir) or [0])[-1] + 1
    if version < 1:
        raise ValueError(f"versions are positive integers, got {version}")
    final = model_dir / str(version)
    if final.exists():
        raise FileExistsError(f"{final} already exists: pass another --version or omit it "
                              "to take the next free one")
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.partial-", dir=model_dir))
    try:
        functions = _write_saved_model(export, staging / "saved")
        saved = staging / "saved"
        (saved / "assets").mkdir(exist_ok=True)
        (saved / "assets" / "labels.txt").write_text("".join(f"{x}\n" for x in export.labels))
        extra = saved / "assets.extra"
        extra.mkdir()
        if export.examples:
            (extra / "examples.json").write_text(json.dumps(export.examples))
            write_warmup_requests(extra / WARMUP_FILE, export)
        summaries = {name: sig.summary for name, sig in export.signatures.items()
                     if sig.summary is not None}
        if summaries:
            (extra / "summary_outputs.json").write_text(json.dumps(summaries))
        if export.profile is not None:
            write_profile(extra, export.profile, functions)
        if export.card:
            (extra / "model_card.json").write_text(json.dumps(export.card, indent=2) + "\n")
        metrics = {"model": export.name, "version": version, **export.metrics}
        (saved / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        if export.history:
            plot_history(export.history, saved / "training_history.png", title=export.name)
        if export.keep_keras_model:
            export.model.save(saved / "model.keras")
        saved.rename(final)  # atomic: same file system, target absent
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


WARMUP_FILE = "tf_serving_warmup_requests"


def warmup_records(export: Export) -> list[bytes]:
    """One serialized PredictionLog per signature example, as TF Serving's warm-up reads it."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    records = []
    for name, example in export.examples.items():
        specs = {spec.name: spec for spec in export.signatures[name].inputs}
        columns: dict[str, list] = {input_name: [] for input_name in specs}
        for instance in example["instances"]:
            if not (isinstance(instance, dict) and set(instance) == set(specs)):
                (only,) = specs
                instance = {only: instance}
            for input_name, value in instance.items():
                columns[input_name].append(_unwrap_b64(value))
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=export.name, signature_name=name))
        for input_name, values in columns.items():
            request.inputs[input_name].CopyFrom(
                tf.make_tensor_proto(values, dtype=specs[input_name].dtype))
        log = prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request))
        records.append(log.SerializeToString())
    return records


def _unwrap_b64(value):
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    return value


def write_warmup_requests(path: Path, export: Export) -> None:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in warmup_records(export):
            writer.write(record)


def _write_saved_model(export: Export, path: Path) -> dict[str, Callable[[dict], dict]]:
    """Save; returns each signature's concrete function (what the SavedModel serves) as a
    call on a dict of arrays by input name."""
    # A plain tf.Module: Keras' ExportArchive stores every variable twice (2.21 / 3.15).
    module = tf.Module()
    module.model = export.model
    module.resources = list(export.track)
    concrete = {name: tf.function(sig.fn, input_signature=sig.inputs).get_concrete_function()
                for name, sig in export.signatures.items()}
    tf.saved_model.save(module, str(path), signatures=concrete)

    def by_name(function, specs: list[tf.TensorSpec]) -> Callable[[dict], dict]:
        return lambda arrays: function(*[tf.constant(arrays[s.name]) for s in specs])

    return {name: by_name(concrete[name], sig.inputs) for name, sig in export.signatures.items()}
