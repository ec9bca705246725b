"""What the server knows about a signature, without importing TensorFlow.

The loader fills these from the loaded SavedModels and the export's assets.extra files;
codecs, batching and routes use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# numpy dtype name -> TensorFlow's DataType enum name (as TF Serving's metadata shows it)
TF_DTYPE_NAMES = {
    "float16": "DT_HALF", "float32": "DT_FLOAT", "float64": "DT_DOUBLE", "int8": "DT_INT8",
    "int16": "DT_INT16", "int32": "DT_INT32", "int64": "DT_INT64", "uint8": "DT_UINT8",
    "uint16": "DT_UINT16", "bool": "DT_BOOL", "string": "DT_STRING",
}


@dataclass(frozen=True)
class TensorInfo:
    """One input or output: `dtype` is a numpy dtype name or "string"; -1 marks free dims."""

    name: str
    dtype: str
    shape: tuple[int, ...] | None  # None: unknown rank

    def describe(self) -> str:
        dims = "?" if self.shape is None else "[" + ", ".join(map(str, self.shape)) + "]"
        return f"{self.dtype} {dims}"

    def metadata(self) -> dict:
        """TensorFlow Serving's TensorInfo JSON."""
        shape = ({"unknown_rank": True} if self.shape is None else
                 {"dim": [{"size": str(d), "name": ""} for d in self.shape],
                  "unknown_rank": False})
        return {"dtype": TF_DTYPE_NAMES.get(self.dtype, self.dtype), "tensor_shape": shape,
                "name": self.name}

    def _row_dims(self) -> list[int]:
        return [1 if d is None or d < 0 else d for d in (self.shape or (1,))[1:]]

    def example_value(self):
        """A zero/empty value of one row in JSON, for the docs of models that ship no example."""
        value = "" if self.dtype == "string" else (False if self.dtype == "bool" else 0)
        for size in reversed(self._row_dims()):
            value = [value] * size
        return value

    def zeros(self) -> np.ndarray:
        """One row of zeros (empty strings), for warm-ups of models that ship no example."""
        if self.dtype == "string":
            return np.full((1, *self._row_dims()), b"", dtype=object)
        return np.zeros((1, *self._row_dims()), dtype=self.dtype)


# Exports made before summaries were declared: their full probability vector is left out.
LEGACY_FULL_OUTPUT = "probabilities"


@dataclass(frozen=True)
class SignatureInfo:
    name: str
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]
    example: dict | None = field(default=None, compare=False)  # {"instances": [...]}
    # the outputs that sum a prediction up for people (upload routes, the scoring CLI), as the
    # export declares them in assets.extra/summary_outputs.json; None: not declared
    summary_outputs: tuple[str, ...] | None = None

    def summary(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The summary outputs of a result, in the signature's output order."""
        if self.summary_outputs is None:
            return {k: v for k, v in outputs.items() if k != LEGACY_FULL_OUTPUT}
        return {k: outputs[k] for k in self.outputs if k in self.summary_outputs}

    def metadata(self) -> dict:
        return {
            "inputs": {k: v.metadata() for k, v in self.inputs.items()},
            "outputs": {k: v.metadata() for k, v in self.outputs.items()},
            "method_name": "tensorflow/serving/predict",
        }

    def request_example(self) -> dict:
        """The export's own example, else zeros of the right shape."""
        if self.example is not None:
            return self.example
        if len(self.inputs) == 1:
            (only,) = self.inputs.values()
            return {"instances": [only.example_value()]}
        return {"instances": [{k: v.example_value() for k, v in self.inputs.items()}]}
