"""TF Serving parity: its model config file (polled, under traffic), version labels on every
protocol, its warm-up records, its metrics path. A real server on the tiny real models."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from app.models import model_config
from app.models.model_config import ModelConfigError, VersionPolicy
from tests.server import running_server

DIGIT = {"instances": [[0.25] * 784]}


def _config(*entries: str) -> str:
    return "model_config_list {\n" + "".join(f"  config {{ {e} }}\n" for e in entries) + "}\n"


def _write(path: Path, text: str) -> None:
    staging = path.with_suffix(".tmp")
    staging.write_text(text)
    staging.replace(path)  # the server never reads half a file


def test_the_config_file_parses_with_tf_servings_protos(tmp_path):
    path = tmp_path / "models.config"
    path.write_text(_config(
        'name: "a" base_path: "/srv/a" model_platform: "tensorflow" '
        'model_version_policy { specific { versions: 1 versions: 3 } } '
        'version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 3 }',
        'name: "b" base_path: "b" model_version_policy { latest { num_versions: 2 } }',
        'name: "c" base_path: "/srv/c" model_version_policy { all {} }',
        'name: "d" base_path: "/srv/d"'))
    sources = model_config.read(path)
    assert sources["a"].labels == {"stable": 1, "canary": 3}
    assert sources["a"].policy.choose([1, 2, 3, 4]) == [1, 3]
    assert sources["b"].base_path == tmp_path / "b"  # relative: from the file's folder
    assert sources["b"].policy.choose([1, 2, 3]) == [2, 3]
    assert sources["c"].policy.choose([1, 2, 3]) == [1, 2, 3]
    assert sources["d"].policy == VersionPolicy("latest", 1)


@pytest.mark.parametrize(("text", "words"), [
    ("model_config_list { config { name: 'a' base_path: '/x' nonsense: 1 } }", "nonsense"),
    (_config('name: "a" base_path: "/x" model_platform: "pytorch"'), "pytorch"),
    (_config('name: "a" base_path: "/x"', 'name: "a" base_path: "/y"'), "twice"),
    (_config('base_path: "/x"'), "a name and a base_path"),
])
def test_a_bad_config_is_refused_with_the_reason(tmp_path, text, words):
    path = tmp_path / "models.config"
    path.write_text(text)
    with pytest.raises(ModelConfigError, match=words):
        model_config.read(path)


@pytest.fixture(scope="module")
def two_versions(models_dir, tmp_path_factory) -> Path:
    """mnist versions 1 and 2 (a copy), under a base path of their own."""
    base = tmp_path_factory.mktemp("mnist-base") / "mnist"
    shutil.copytree(models_dir / "mnist" / "1", base / "1")
    shutil.copytree(models_dir / "mnist" / "1", base / "2")
    return base


MNIST_ENTRY = ('name: "mnist" base_path: "{base}" '
               'model_version_policy {{ specific {{ versions: 1 versions: 2 }} }} '
               'version_labels {{ key: "stable" value: 1 }} '
               'version_labels {{ key: "canary" value: 2 }}')


def _served(url: str, model: str) -> list[int]:
    response = httpx.get(f"{url}/v1/models/{model}")
    if response.status_code == 404:
        return []
    return sorted(int(v["version"]) for v in response.json()["model_version_status"])


def _wait(check, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the server did not follow its model config"
        time.sleep(0.2)


@pytest.mark.long
def test_labels_and_a_polled_config_under_traffic(models_dir, two_versions, tmp_path):
    config = tmp_path / "models.config"
    _write(config, _config(MNIST_ENTRY.format(base=two_versions)))
    with running_server(tmp_path / "unused", poll_interval_s=0.3,
                        env={"TFSERVE_MODEL_CONFIG": str(config),
                             "TFSERVE_MODEL_CONFIG_POLL_S": "0.3"}) as url:
        assert _served(url, "mnist") == [1, 2]
        assert _served(url, "imdb_sentiment") == []
        # labels, on every protocol
        status = httpx.get(url + "/v1/models/mnist/labels/canary").json()
        assert [v["version"] for v in status["model_version_status"]] == ["2"]
        meta = httpx.get(url + "/v1/models/mnist/labels/stable/metadata").json()
        assert meta["model_spec"]["version"] == "1"
        assert httpx.post(url + "/v1/models/mnist/labels/stable:predict", json=DIGIT
                          ).status_code == 200
        assert httpx.post(url + "/models/mnist/labels/canary/serving_default/predict",
                          json=DIGIT).status_code == 200
        name = httpx.get(url + "/v2/models/mnist").json()["inputs"][0]["name"]
        v2 = httpx.post(url + "/v2/models/mnist/versions/canary/infer", json={"inputs": [
            {"name": name, "datatype": "FP32", "shape": [1, 784], "data": [0.25] * 784}]})
        assert v2.json()["model_version"] == "2"
        assert httpx.get(url + "/v2/models/mnist/versions/stable/ready").status_code == 200
        unknown = httpx.post(url + "/v1/models/mnist/labels/beta:predict", json=DIGIT)
        assert unknown.status_code == 404
        assert "canary -> 2, stable -> 1" in unknown.json()["error"]

        # models come and go while mnist takes traffic: no request is lost
        statuses: list[int] = []
        stop = threading.Event()

        def traffic() -> None:
            with httpx.Client(base_url=url, timeout=30) as client:
                while not stop.is_set():
                    statuses.append(client.post("/v1/models/mnist:predict",
                                                json=DIGIT).status_code)

        sender = threading.Thread(target=traffic)
        sender.start()
        try:
            imdb = f'name: "imdb_sentiment" base_path: "{models_dir / "imdb_sentiment"}"'
            _write(config, _config(MNIST_ENTRY.format(base=two_versions), imdb))
            _wait(lambda: _served(url, "imdb_sentiment") == [1])
            review = httpx.post(url + "/v1/models/imdb_sentiment:predict", json={
                "signature_name": "predict_text", "instances": ["A fine film."]})
            assert review.status_code == 200
            only_one = MNIST_ENTRY.format(base=two_versions).replace(" versions: 2", "")
            _write(config, _config(only_one))
            _wait(lambda: _served(url, "imdb_sentiment") == [] and _served(url, "mnist") == [1])
            _write(config, "model_config_list { config { name: ")  # broken: kept the last
            time.sleep(1.5)
            assert _served(url, "mnist") == [1]
            assert httpx.get(url + "/readyz").status_code == 200
        finally:
            stop.set()
            sender.join()
        assert len(statuses) > 20 and set(statuses) == {200}, statuses[-5:]


# warm-up records --------------------------------------------------------------------------


def _records(path: Path) -> list[prediction_log_pb2.PredictionLog]:
    return [prediction_log_pb2.PredictionLog.FromString(raw.numpy())
            for raw in tf.data.TFRecordDataset(str(path))]


def test_exports_write_tf_serving_warmup_records(models_dir):
    for model in ("mnist", "imdb_sentiment", "inception_v3"):
        extra = models_dir / model / "1" / "assets.extra"
        records = _records(extra / "tf_serving_warmup_requests")
        import json

        examples = json.loads((extra / "examples.json").read_text())
        assert {r.predict_log.request.model_spec.signature_name for r in records} == set(
            examples)
        for record in records:
            request = record.predict_log.request
            assert request.model_spec.name == model
            for tensor in request.inputs.values():
                assert tf.make_ndarray(tensor).shape[0] == 1


def _metric(url: str, name: str, signature: str) -> float:
    text = httpx.get(url + "/monitoring/prometheus/metrics").text
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples if s.name == name
               and s.labels.get("model") == "mnist" and s.labels.get("signature") == signature)


@pytest.mark.long
def test_a_warmup_file_warms_the_model_up(models_dir, tmp_path):
    version = tmp_path / "models" / "mnist" / "1"
    shutil.copytree(models_dir / "mnist" / "1", version)
    with tf.io.TFRecordWriter(str(version / "assets.extra" / "tf_serving_warmup_requests")) as w:
        for rows in (2, 3, 5):
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name="mnist", signature_name="serving_default"))
            request.inputs["image_input"].CopyFrom(
                tf.make_tensor_proto(np.full((rows, 784), 0.5, np.float32)))
            w.write(prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)).SerializeToString())
    with running_server(tmp_path / "models", poll_interval_s=0) as url:
        assert _metric(url, "tfserve_batch_size_count", "serving_default") == 3
        assert _metric(url, "tfserve_batch_size_sum", "serving_default") == 10
        assert _metric(url, "tfserve_batch_size_count", "predict_image") == 1  # its example
        assert httpx.get(url + "/metrics").text.count("tfserve_batch_size_count") >= 2
