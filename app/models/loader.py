"""Loading a SavedModel version: its signatures, assets and callable runners.

The only server module that imports TensorFlow (training/ is the other user). `load()` is
blocking and expensive (the manager runs it in a worker thread); what it returns holds
everything the rest of the server needs in plain Python and numpy:
- `SignatureInfo` per serving signature (names, dtypes, shapes), with the export's request
  example (assets.extra/examples.json) and summary outputs (assets.extra/summary_outputs.json)
  when it ships them;
- a runner per signature: numpy in, numpy out, thread-safe; input the graph rejects raises
  `InvalidInput` (400) with TensorFlow's reason, cleaned of stacks, graph internals and paths;
- warm-up requests: TF Serving's `assets.extra/tf_serving_warmup_requests` (a TFRecord of
  PredictionLog protos, at most 1,000, as TF Serving reads it) when the export has it; every
  signature it leaves out warms up with its example as tensors, else one row of zeros;
- labels (assets/labels.txt), the training metrics (metrics.json) and the model card
  (assets.extra/model_card.json).
Dropping the returned object (`handle`) releases the TensorFlow objects.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from app.codecs import rest
from app.errors import InvalidInput, redact_paths
from app.models.signatures import SignatureInfo, TensorInfo

log = logging.getLogger(__name__)
Arrays = dict[str, np.ndarray]
Runner = Callable[[Arrays], Arrays]


@dataclass
class LoadedVersion:
    """A version as the server uses it; `handle` keeps the TensorFlow objects alive."""

    signatures: dict[str, SignatureInfo]
    runners: dict[str, Runner]
    warmup_inputs: list[tuple[str, Arrays, int]]  # (signature, arrays, rows), in order
    labels: list[str]
    training_metrics: dict | None
    card: dict | None  # assets.extra/model_card.json: task, data, input notes, a warning
    handle: object = field(repr=False)


def configure_threads(intra_op: int, inter_op: int) -> None:
    """Size TensorFlow's thread pools (0: leave TensorFlow's default). TensorFlow fixes them
    when it first runs anything, so this comes before the first load; a process that already
    runs TensorFlow (tests building several apps) keeps its pools, with a warning."""
    threading = tf.config.threading
    for wanted, get, set_ in ((intra_op, threading.get_intra_op_parallelism_threads,
                               threading.set_intra_op_parallelism_threads),
                              (inter_op, threading.get_inter_op_parallelism_threads,
                               threading.set_inter_op_parallelism_threads)):
        if wanted and get() != wanted:
            try:
                set_(wanted)
            except RuntimeError:
                log.warning("TensorFlow already runs with %d threads; %d takes a restart",
                            get(), wanted)


def load(path: Path, max_instances: int = 1024) -> LoadedVersion:
    """Load the SavedModel at `path` (blocking). Raises on anything unservable."""
    loaded = tf.saved_model.load(str(path))
    functions = {k: v for k, v in loaded.signatures.items() if not k.startswith("__")}
    if not functions:
        raise ValueError("the SavedModel has no serving signatures")
    extra = path / "assets.extra"
    examples = _read_json(extra / "examples.json") or {}
    summaries = _read_json(extra / "summary_outputs.json") or {}
    signatures = {name: _signature_info(name, function, examples.get(name),
                                        summaries.get(name))
                  for name, function in functions.items()}
    labels_file = path / "assets" / "labels.txt"
    return LoadedVersion(
        signatures=signatures,
        runners={name: make_runner(function) for name, function in functions.items()},
        warmup_inputs=warmup_requests(extra / WARMUP_FILE, signatures, max_instances),
        labels=labels_file.read_text().splitlines() if labels_file.exists() else [],
        training_metrics=_read_json(path / "metrics.json"),
        card=_read_json(extra / "model_card.json"),
        handle=loaded)


def _signature_info(name: str, function, example: dict | None,
                    summary: list[str] | None) -> SignatureInfo:
    inputs = function.structured_input_signature[1]
    outputs = function.structured_outputs
    if not isinstance(outputs, dict):
        raise ValueError(f"signature {name!r} does not return named outputs")
    if summary is not None and not set(summary) <= set(outputs):
        raise ValueError(f"summary outputs {summary} of signature {name!r} are not all among "
                         f"its outputs {sorted(outputs)}")
    return SignatureInfo(
        name,
        {k: _tensor_info(k, s) for k, s in sorted(inputs.items())},
        {k: _tensor_info(k, s) for k, s in sorted(outputs.items())},
        example=example,
        summary_outputs=None if summary is None else tuple(summary))


def _tensor_info(name: str, spec: tf.TensorSpec) -> TensorInfo:
    dtype = "string" if spec.dtype == tf.string else spec.dtype.as_numpy_dtype().dtype.name
    shape = None if spec.shape.rank is None else tuple(
        -1 if d is None else int(d) for d in spec.shape.as_list())
    return TensorInfo(name, dtype, shape)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


WARMUP_FILE = "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving's limit


def warmup_requests(path: Path, signatures: dict[str, SignatureInfo],
                    max_instances: int) -> list[tuple[str, Arrays, int]]:
    """The warm-up file's requests, then the default for each signature it leaves out."""
    requests = read_warmup_file(path, signatures) if path.exists() else []
    covered = {name for name, _, _ in requests}
    for name, info in signatures.items():
        if name not in covered:
            requests.append((name, *warmup_inputs(info, max_instances)))
    return requests


def read_warmup_file(path: Path, signatures: dict[str, SignatureInfo]
                     ) -> list[tuple[str, Arrays, int]]:
    """TF Serving's warm-up records (PredictionLog with a predict_log); anything unusable in
    them fails the load, as it does in TF Serving."""
    from tensorflow_serving.apis import prediction_log_pb2

    requests = []
    for raw in tf.data.TFRecordDataset(str(path)).take(MAX_WARMUP_RECORDS):
        record = prediction_log_pb2.PredictionLog.FromString(raw.numpy())
        if record.WhichOneof("log_type") != "predict_log":
            raise ValueError(f"warm-up record of kind {record.WhichOneof('log_type')!r}: only "
                             "predict_log records are served")
        request = record.predict_log.request
        name = request.model_spec.signature_name or "serving_default"
        info = signatures.get(name)
        if info is None or set(request.inputs) != set(info.inputs):
            raise ValueError(f"a warm-up record for signature {name!r} does not match the "
                             f"model's signatures {sorted(signatures)}")
        arrays = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        requests.append((name, arrays, len(next(iter(arrays.values())))))
    log.info("%d warm-up requests in %s", len(requests), path.name)
    return requests


def warmup_inputs(info: SignatureInfo, max_instances: int) -> tuple[Arrays, int]:
    """The export's example as tensors (it is written in the tfdeploy request format), else
    one row of zeros: what the first call compiles the graph with."""
    if info.example is not None:
        arrays, rows, _ = rest.decode_request(info.example, info, max_instances)
        return arrays, rows
    return {name: spec.zeros() for name, spec in info.inputs.items()}, 1


def full_batch(arrays: Arrays, rows: int, batch_rows: int) -> Arrays:
    """`arrays` repeated along axis 0 to `batch_rows` rows: a warm-up call of a full batch."""
    index = np.arange(batch_rows) % rows
    return {name: np.take(array, index, axis=0) for name, array in arrays.items()}


def make_runner(function) -> Runner:
    """numpy in, numpy out; runs in a worker thread. Input the graph rejects -> 400."""
    call = flat_call(function) or keyword_call(function)

    def run(inputs: Arrays) -> Arrays:
        try:
            outputs = call(inputs)
        except tf.errors.InvalidArgumentError as err:
            raise InvalidInput(f"the model rejected the input: {clean_error(err)}") from None
        return {k: outputs[k].numpy() for k in sorted(outputs)}  # a stable order

    return run


def keyword_call(function) -> Callable[[Arrays], dict]:
    """The signature called as TensorFlow documents it: one keyword argument per input."""
    return lambda inputs: function(**{k: tf.constant(v) for k, v in inputs.items()})


def flat_call(function) -> Callable[[Arrays], dict] | None:
    """The signature's graph called with its inputs in their flat order, or None where that
    order is not one dense tensor per named input (or this TensorFlow lacks the API).

    A keyword call binds its arguments to the signature in Python on every call: ~100 µs of
    a 1-row mnist call's ~300 (`timeit`), held under the GIL. What it checks (names, and
    dtypes and shapes, which the codecs already enforce) is checked here once, at load; a
    tensor the graph still rejects fails in the graph as before (InvalidArgumentError)."""
    try:
        graph_call = function.inference_fn.call_flat
        parameters = list(function.function_type.parameters.values())
        pack_output = function.function_type.pack_output
        captured = function.captured_inputs  # the variables' handles, fixed once loaded
    except AttributeError:
        return None
    names = [parameter.name for parameter in parameters]
    dense = all(isinstance(p.type_constraint, tf.TensorSpec) for p in parameters)
    if not dense or set(names) != set(function.structured_input_signature[1]):
        return None

    def call(inputs: Arrays) -> dict:
        return pack_output(graph_call(*[tf.constant(inputs[name]) for name in names],
                                      *captured))

    return call


_TF_NOISE = re.compile(r"\s*(\[\[.*?\]\]|\[Op:[^\]]*\]|\{\{.*?\}\})")
_TF_PREAMBLE = ("Graph execution error", "Detected at node", "<stack traces", "File ", "  ")


# TensorFlow's decode_image names every format it was built to know, JPEG XL included, which
# it cannot decode; what it decodes is JPEG, PNG, GIF, BMP and WebP.
_UNKNOWN_IMAGE = re.compile(r"Unknown image file format\..*", re.S)
IMAGE_FORMATS = "JPEG, PNG, GIF, BMP or WebP"


def clean_error(err: BaseException, with_node: bool = False) -> str:
    """The error's reason, fit for a client: no stack, no graph internals, no file paths.

    TensorFlow's graph errors open with "Graph execution error:" and a stack; the reason is
    the first line after them, and the failing node is named in "Detected at node ..." (kept
    for the server's log with `with_node`: a client cannot act on a node name).
    """
    lines = [line for line in str(err).splitlines() if line.strip()]
    reasons = [line for line in lines if not line.startswith(_TF_PREAMBLE)]
    reason = _TF_NOISE.sub("", reasons[0] if reasons else (lines[0] if lines else "")).strip()
    reason = _UNKNOWN_IMAGE.sub(f"not an image file the model can decode ({IMAGE_FORMATS})",
                                reason)
    node = re.search(r"Detected at node (\S+)", str(err))
    if node and with_node:
        reason += f" (at node {node.group(1)})"
    return redact_paths(reason)
