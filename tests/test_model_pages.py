"""The model pages' server side (issue 15): cards, warnings, examples and friendlier errors.

The pages themselves run in headless Chromium in tests/browser/test_ui.py.
"""

from __future__ import annotations

import httpx
import pytest

from app.http_api.routes.ui import playgrounds
from app.models.servable import Servable
from app.models.signatures import SignatureInfo, TensorInfo
from tests.conftest import SAMPLES

PHOTO = (SAMPLES / "images" / "umbrella.jpg").read_bytes()


@pytest.fixture(scope="module")
def server(shared_server):
    return shared_server


@pytest.fixture(scope="module")
def server_log(shared_server):
    return shared_server.log


def test_the_pages_and_their_files_are_served_from_the_package(server):
    for path in ("/ui", "/ui/", "/ui/mnist"):
        page = httpx.get(server + path, follow_redirects=True)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"], path
        assert "/static/ui/ui.js" in page.text and "http" not in page.text.split("<body")[0]
    assert "function digitPlayground" in httpx.get(server + "/static/ui/ui.js").text
    assert httpx.get(server + "/static/ui/ui.css").status_code == 200
    listing = httpx.get(server + "/models").json()
    assert listing["ui"] == "/ui" and listing["models"]["mnist"]["ui"] == "/ui/mnist"
    assert "[/ui](/ui)" in httpx.get(server + "/openapi.json").json()["info"]["description"]


def test_the_mnist_card_comes_from_the_export(server):
    card = httpx.get(server + "/models/mnist/card").json()
    assert card["model"] == "mnist" and card["version"] == 1 and card["warning"] is None
    assert "digit" in card["task"] and card["labels"] == [str(d) for d in range(10)]
    assert "MNIST" in card["data"]["source"] and card["training"]["val_accuracy"] > 0
    (image_input,) = card["signatures"]["serving_default"]["inputs"]
    assert image_input["shape"] == [-1, 784] and "pixel / 255" in image_input["note"]
    assert [p["kind"] for p in card["playgrounds"]] == ["digit", "photo"]
    assert card["playgrounds"][0]["input"] == "image_input"
    plot = httpx.get(server + card["training_history"])
    assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG")


def test_each_model_gets_the_playground_its_signatures_allow(server):
    kinds = {m: [p["kind"] for p in httpx.get(f"{server}/models/{m}/card").json()["playgrounds"]]
             for m in ("cifar10", "imdb_sentiment", "inception_v3")}
    assert kinds == {"cifar10": ["photo"], "imdb_sentiment": ["text"], "inception_v3": ["photo"]}
    assert httpx.get(server + "/models/nope/card").status_code == 404
    assert httpx.get(server + "/models/inception_v3/versions/1/training_history.png"
                     ).status_code == 404  # not trained here: no plot


def test_a_model_that_fits_no_playground_gets_the_json_editor():
    tensor = TensorInfo("x", "float32", (-1, 3))
    servable = Servable("odd", 4, None, signatures={
        "serving_default": SignatureInfo("serving_default", {"x": tensor}, {"y": tensor})})
    assert playgrounds(servable) == [{
        "kind": "json", "signature": "serving_default",
        "example": "/models/odd/serving_default/example",
        "route": "/models/odd/serving_default/predict"}]
    flat_digit = TensorInfo("pixels", "float32", (-1, 28, 28, 1))
    servable.signatures = {"s": SignatureInfo("s", {"pixels": flat_digit}, {"y": tensor})}
    assert playgrounds(servable)[0]["kind"] == "digit"


def test_random_weights_are_announced_wherever_a_user_looks(server, server_log):
    assert "inception_v3 version 1: random weights" in server_log.read_text()
    expected = '299 tfserve "inception_v3/1: random weights'
    upload = httpx.post(server + "/models/inception_v3/predict/image", timeout=60,
                        files=[("file", ("umbrella.jpg", PHOTO))])
    assert upload.status_code == 200 and upload.headers["warning"].startswith(expected)
    v1 = httpx.post(server + "/v1/models/inception_v3:predict", timeout=60, json={
        "signature_name": "predict_image", "instances": [{"b64": __import__("base64").b64encode(
            PHOTO).decode()}]})
    assert v1.headers["warning"].startswith(expected)
    status = httpx.get(server + "/v1/models/inception_v3").json()["model_version_status"][0]
    assert "random weights" in status["warning"] and status["status"]["error_code"] == "OK"
    assert "random weights" in httpx.get(server + "/v1/models/inception_v3/metadata"
                                         ).json()["warning"]
    operation = httpx.get(server + "/openapi.json").json()["paths"][
        "/models/inception_v3/predict_image/predict"]["post"]
    assert "**Warning: inception_v3 version 1 has random weights" in operation["description"]
    assert "random weights" in httpx.get(server + "/models").json()["models"][
        "inception_v3"]["versions"][0]["warning"]
    mnist = httpx.post(server + "/models/mnist/serving_default/predict",
                       json={"instances": [[0.0] * 784]})
    assert mnist.status_code == 200 and "warning" not in mnist.headers
    assert mnist.headers["x-model-version"] == "1"


def test_every_signature_has_an_example_in_the_api_docs(server):
    paths = httpx.get(server + "/openapi.json").json()["paths"]
    inception = paths["/models/inception_v3/serving_default/predict"]["post"]
    assert "GET /models/inception_v3/serving_default/example" in inception["description"]
    example = httpx.get(server + "/models/inception_v3/serving_default/example").json()
    answer = httpx.post(server + "/models/inception_v3/serving_default/predict", json=example,
                        timeout=60)
    assert answer.status_code == 200, answer.text
    generic = paths["/v1/models/{model_and_verb}"]["post"]["requestBody"]["content"][
        "application/json"]["examples"]
    assert {"mnist", "imdb_sentiment"} <= set(generic)
    assert "cifar10" not in generic  # 32x32x3 floats: by reference, as InceptionV3's
    for model, example in generic.items():
        response = httpx.post(f"{server}/v1/models/{model}:predict", json=example["value"])
        assert response.status_code == 200, (model, response.text)
    # the shared route dict was not changed: the tfdeploy generic route has no v1 examples
    tfdeploy = paths["/models/{model}/{signature}/predict"]["post"]["requestBody"]["content"]
    assert "examples" not in tfdeploy["application/json"]
    mnist = paths["/models/mnist/serving_default/predict"]["post"]["description"]
    assert "SCALED TO 0..1 (pixel / 255)" in mnist


def test_a_bad_file_among_good_ones_is_named_and_the_others_still_answer(server):
    files = [("file", ("umbrella.jpg", PHOTO)), ("file", ("notes.txt", b"not an image" * 9)),
             ("file", ("again.jpg", PHOTO))]
    answer = httpx.post(server + "/models/inception_v3/predict/image", files=files, timeout=60)
    assert answer.status_code == 200, answer.text
    first, bad, last = answer.json()["predictions"]
    assert first["file"] == "umbrella.jpg" and len(first["classes"]) == 3
    assert last["classes"] == first["classes"]
    assert bad["file"] == "notes.txt" and "classes" not in bad
    assert bad["error"] == ("file 'notes.txt': not an image file the model can decode (JPEG, "
                            "PNG, GIF, BMP or WebP)")
    alone = httpx.post(server + "/models/inception_v3/predict/image", timeout=60,
                       files=[("file", ("notes.txt", b"not an image" * 9))])
    assert alone.status_code == 400 and "notes.txt" in alone.json()["error"]
    assert "node" not in alone.json()["error"] and "JPEG XL" not in alone.json()["error"]


def test_json_sent_to_an_upload_route_is_415_and_the_text_route_says_what_it_expects(server):
    upload = httpx.post(server + "/models/inception_v3/predict/image", json={"file": "x"})
    assert upload.status_code == 415 and "multipart/form-data" in upload.json()["error"]
    text = httpx.post(server + "/models/imdb_sentiment/predict/text", json={"texts": []})
    assert text.status_code == 400
    assert text.json()["error"].startswith('expected {"texts": ["...", ...]} with at least one')
    assert "validation error" not in text.json()["error"]


def test_the_swagger_page_stays_small_and_has_a_favicon(server):
    # 399 KB with every example inlined (issue 31): Swagger UI showed its spinner for seconds
    document = httpx.get(server + "/openapi.json")
    assert len(document.content) < 120_000, len(document.content)
    cifar = document.json()["paths"]["/models/cifar10/serving_default/predict"]["post"]
    assert "GET /models/cifar10/serving_default/example" in cifar["description"]
    icon = httpx.get(server + "/favicon.ico", follow_redirects=True)
    assert icon.status_code == 200 and icon.content.startswith(b"\x89PNG")


def test_an_unknown_model_page_is_404(server):
    missing = httpx.get(server + "/ui/nosuch")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
    assert httpx.get(server + "/ui/mnist").status_code == 200
