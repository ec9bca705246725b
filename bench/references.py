"""The reference servers the benchmark compares against, on the very same signatures.

    python -m bench.references {plain,floor,litserve} --models-dir DIR --port P TARGET...

TARGET is model/signature; each is served at POST /predict/{model}/{signature} and takes
TensorFlow Serving's row format ({"instances": [...]}, binary strings as {"b64": ...}).
  plain     FastAPI as its docs teach it: a sync endpoint, the signature called once per
            request, FastAPI's own JSON encoding (no batching)
  floor     FastAPI + orjson that parses the body and builds the array, then returns a fixed
            answer without calling the model: the most any server on this stack can do
  litserve  LitServe with its dynamic batching on (max_batch_size 64, batch_timeout 2 ms)
  raw       a bare ASGI app on the same uvicorn that reads the body and returns a fixed
            answer: no framework, no JSON, no model; the ceiling of the HTTP server itself
"""

from __future__ import annotations

import argparse
import base64
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import orjson  # noqa: E402
from fastapi import Body, FastAPI, Request, Response  # noqa: E402

from app.models.repository import scan  # noqa: E402


def load(models_dir: Path, target: str):
    """The signature of the model's highest version, with its one input's name and dtype."""
    import tensorflow as tf

    model, signature = target.split("/")
    version = scan(models_dir)[model][-1]
    function = tf.saved_model.load(str(models_dir / model / str(version))).signatures[signature]
    (name, spec), = function.structured_input_signature[1].items()
    return function, name, spec.dtype


def rows(instances: list[Any], dtype, name: str) -> np.ndarray:
    """JSON rows (bare, or {name: value}) -> the input array, as every server must do."""
    import tensorflow as tf

    values = [i[name] if isinstance(i, dict) and name in i else i for i in instances]
    if dtype == tf.string:
        return np.array([base64.b64decode(v["b64"]) if isinstance(v, dict) else v.encode()
                         for v in values], dtype=object)
    return np.asarray(values, dtype=dtype.as_numpy_dtype)


def run_model(function, name: str, array: np.ndarray) -> dict[str, np.ndarray]:
    import tensorflow as tf

    return {k: v.numpy() for k, v in function(**{name: tf.constant(array)}).items()}


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [_plain(v) for v in value]
    return value.tolist() if isinstance(value, np.ndarray | np.generic) else value


def jsonable(outputs: dict[str, np.ndarray], i: int) -> dict:
    return {k: _plain(v[i]) for k, v in outputs.items()}


def plain_app(models_dir: Path, targets: list[str]) -> FastAPI:
    app = FastAPI()
    loaded = {t: load(models_dir, t) for t in targets}

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.post("/predict/{model}/{signature}")
    def predict(model: str, signature: str, body: dict = Body(...)) -> dict:  # noqa: B008
        function, name, dtype = loaded[f"{model}/{signature}"]
        outputs = run_model(function, name, rows(body["instances"], dtype, name))
        return {"predictions": [jsonable(outputs, i) for i in range(len(body["instances"]))]}

    return app


def floor_app(models_dir: Path, targets: list[str]) -> FastAPI:
    app = FastAPI()
    inputs = {t: load(models_dir, t)[1:] for t in targets}
    answer = orjson.dumps({"predictions": [{"prediction": [0.1] * 10}]})

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.post("/predict/{model}/{signature}")
    async def predict(model: str, signature: str, request: Request) -> Response:
        body = orjson.loads(await request.body())
        name, dtype = inputs[f"{model}/{signature}"]
        rows(body["instances"], dtype, name)
        return Response(answer, media_type="application/json")

    return app


def raw_app():
    """The HTTP server's own ceiling: any POST's body read whole, one fixed answer."""
    answer = orjson.dumps({"predictions": [{"prediction": [0.1] * 10}]})
    start = {"type": "http.response.start", "status": 200,
             "headers": [(b"content-type", b"application/json"),
                         (b"content-length", str(len(answer)).encode())]}

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":  # nothing to set up or tear down
            while True:
                event = (await receive())["type"]
                await send({"type": event + ".complete"})
                if event == "lifespan.shutdown":
                    return
        while (await receive()).get("more_body"):
            pass
        await send(start)
        await send({"type": "http.response.body", "body": answer})

    return app


try:
    import litserve as ls
except ImportError:  # the `bench` extra; only the litserve reference needs it
    ls = None


if ls is not None:
    class SignatureAPI(ls.LitAPI):
        """One signature behind LitServe's batching; module level, as its workers are spawned."""

        def __init__(self, models_dir: Path, target: str):
            super().__init__(max_batch_size=64, batch_timeout=0.002,
                             api_path=f"/predict/{target}")
            self.models_dir, self.target = models_dir, target

        def setup(self, device) -> None:
            self.function, self.name, self.dtype = load(self.models_dir, self.target)
            self.counts: list[int] = []

        def decode_request(self, request: dict) -> np.ndarray:
            return rows(request["instances"], self.dtype, self.name)

        def batch(self, inputs: list[np.ndarray]) -> np.ndarray:
            self.counts = [len(x) for x in inputs]  # one batch at a time per worker
            return np.concatenate(inputs)

        def predict(self, array: np.ndarray) -> dict[str, np.ndarray]:
            return run_model(self.function, self.name, array)

        def unbatch(self, outputs: dict[str, np.ndarray]) -> list[dict]:
            splits = np.cumsum(self.counts)[:-1]
            parts = {k: np.split(v, splits) for k, v in outputs.items()}
            return [{k: parts[k][i] for k in parts} for i in range(len(self.counts))]

        def encode_response(self, outputs: dict[str, np.ndarray]) -> dict:
            return {"predictions": [jsonable(outputs, i)
                                    for i in range(len(next(iter(outputs.values()))))]}


def run_litserve(models_dir: Path, targets: list[str], port: int) -> None:
    if ls is None:
        raise SystemExit("litserve is not installed: pip install -e '.[bench]'")
    server = ls.LitServer([SignatureAPI(models_dir, t) for t in targets], accelerator="cpu",
                          healthcheck_path="/health")
    server.run(host="127.0.0.1", port=port, generate_client_file=False, log_level="warning",
               num_api_servers=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["plain", "floor", "litserve", "raw"])
    parser.add_argument("targets", nargs="+", help="model/signature")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if args.kind == "litserve":
        run_litserve(args.models_dir, args.targets, args.port)
        return
    import uvicorn

    if args.kind == "raw":
        app = raw_app()
    else:
        app = (plain_app if args.kind == "plain" else floor_app)(args.models_dir, args.targets)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
