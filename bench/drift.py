"""`python -m bench.drift`: the monitoring scenarios on real data against a real server.

    python -m bench.drift [--models-dir models] [--min-rows 300] [--window-rows 1000]

Serves each model as several versions of the same export (every version has its own window),
sends real data the model was trained on to version 1 and what production should not send
it to the others, and prints each summary's PSI and state (GET /models/{model}/monitoring):

  mnist 1           MNIST test digits the profile does not hold (every 5th from the 2nd)
  mnist 2, 3, 4     the same digits inverted (1 - x), on raw 0-255 pixels; uniform noise
  imdb_sentiment 1  IMDB test reviews the profile does not hold (predict_text)
  imdb_sentiment 2  the same reviews, each word's letters shuffled (another "language")
  cifar10 1, 2      unseen test photos of its 8 classes; photos of the 2 held-out classes
  foreign 1, 2      a SavedModel without profile: a first window, then the same / shifted rows

tests/test_monitoring.py runs it on the tiny models; here, any model folder (`make models`).
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import httpx
import numpy as np
import orjson

from training import cifar10
from training.data import load_cifar10, load_imdb_reviews, load_mnist

VERSIONS = {"mnist": 4, "imdb_sentiment": 2, "cifar10": 2}
FOREIGN = "foreign"


def repository(models_dir: Path, target: Path) -> Path:
    """`target` holding each model's highest version of `models_dir` as versions 1..N
    (symlinks) and a profile-less SavedModel as `foreign` 1 and 2."""
    for model, count in VERSIONS.items():
        source = max((p for p in (models_dir / model).iterdir() if p.name.isdigit()),
                     key=lambda p: int(p.name))
        (target / model).mkdir(parents=True)
        for version in range(1, count + 1):
            (target / model / str(version)).symlink_to(source.resolve())
    for version in (1, 2):
        save_foreign_model(target / FOREIGN / str(version))
    return target


def save_foreign_model(path: Path) -> None:
    """A SavedModel made without training/: no profile, three-class softmax of 4 inputs."""
    import tensorflow as tf

    module = tf.Module()
    module.weights = tf.Variable(np.eye(4, 3, dtype=np.float32) * 3)

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(x):
        return {"scores": tf.nn.softmax(tf.matmul(x, module.weights))}

    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})


def predict(client: httpx.Client, model: str, version: int, signature: str, name: str,
            rows, per_request: int = 100) -> None:
    for begin in range(0, len(rows), per_request):
        body = {"signature_name": signature,
                "instances": [{name: row} for row in rows[begin:begin + per_request]]}
        response = client.post(f"/v1/models/{model}/versions/{version}:predict",
                               content=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY))
        if response.status_code != 200:
            raise RuntimeError(f"{model}/{version}: {response.status_code} {response.text[:300]}")


def scrambled(text: str, rng: random.Random) -> str:
    """The review's words with their letters shuffled: English no more, same lengths."""
    return " ".join("".join(rng.sample(word, len(word))) for word in text.split())


def send_scenarios(client: httpx.Client) -> None:
    (_, _), (digits, _) = load_mnist()
    unseen = digits[1::5]  # the profile holds every 5th test digit from the first
    scaled = unseen.reshape(-1, 784).astype(np.float32) / 255
    predict(client, "mnist", 1, "serving_default", "image_input", scaled)
    predict(client, "mnist", 2, "serving_default", "image_input", 1 - scaled)
    predict(client, "mnist", 3, "serving_default", "image_input", scaled * 255)
    noise = np.random.default_rng(0).random((1000, 784), dtype=np.float32)
    predict(client, "mnist", 4, "serving_default", "image_input", noise)

    reviews, _ = load_imdb_reviews("test", 1000)
    reviews = reviews[1000:]  # the profile holds the first 500 of each class
    predict(client, "imdb_sentiment", 1, "predict_text", "text", reviews, 50)
    rng = random.Random(0)
    predict(client, "imdb_sentiment", 2, "predict_text", "text",
            [scrambled(r, rng) for r in reviews], 50)

    # photos come class by class: shuffled, so the window's latest rows hold every class
    shuffle = np.random.default_rng(2).permutation
    per_class = cifar10.PROFILE_PER_CLASS
    _, (known, _) = load_cifar10(cifar10.BASE_CLASSES, 1, 2 * per_class)
    unseen_known = np.concatenate([known[c * 2 * per_class + per_class:(c + 1) * 2 * per_class]
                                   for c in range(len(cifar10.BASE_CLASSES))])
    predict(client, "cifar10", 1, "serving_default", "image", shuffle(unseen_known) / 255)
    _, (held_out, _) = load_cifar10(cifar10.TRANSFER_CLASSES, 1, 600)
    predict(client, "cifar10", 2, "serving_default", "image", shuffle(held_out) / 255)

    rows = np.random.default_rng(1)
    for version, shift in ((1, 0.0), (2, 3.0)):
        baseline = rows.normal(size=(1000, 4))
        later = rows.normal(size=(600, 4)) + [shift, 0, 0, 0]
        predict(client, FOREIGN, version, "serving_default", "x", np.vstack([baseline, later]))
    time.sleep(1.0)  # the monitoring thread folds the last batches


def report(client: httpx.Client) -> list[str]:
    lines = ["| model | version | signature | state | rows | PSI per summary |",
             "|---|---|---|---|---|---|"]
    for model in [*VERSIONS, FOREIGN]:
        for version in client.get(f"/models/{model}/monitoring").json()["versions"][::-1]:
            for name, signature in version["signatures"].items():
                if not signature["rows_in_window"]:
                    continue
                scores = ", ".join(f"{s['name']} {s['psi']:.3f}" for s in signature["summaries"]
                                   if s["psi"] is not None)
                lines.append(f"| {model} | {version['version']} | {name} | {signature['state']} "
                             f"| {signature['rows_in_window']} | {scores} |")
    return lines


def main() -> int:
    import tempfile

    from bench.processes import our_server

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--min-rows", type=int, default=300)
    parser.add_argument("--window-rows", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        served = repository(args.models_dir.resolve(), Path(folder))
        with our_server(served, max_versions=0, grpc_port=0, monitoring_min_rows=args.min_rows,
                        monitoring_window_rows=args.window_rows) as running, \
                httpx.Client(base_url=running.url, timeout=120) as client:
            send_scenarios(client)
            print("\n".join(report(client)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
