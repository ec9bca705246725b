"""The OpenAPI document of the live app, in-process: every route, one operation per model and
signature with its example, errors and the API key as clients and fuzzers read them."""

from __future__ import annotations

import asyncio

import pytest

from app.http_api.routes import PREDICT_ROUTES
from tests.helpers import in_process, only


@pytest.fixture(scope="module")
def documents(models_dir, tmp_path_factory) -> dict[str, dict]:
    models = only(models_dir, tmp_path_factory.mktemp("models"), "mnist", "imdb_sentiment")

    async def fetch():
        found = {}
        for name, settings in (("open", {}), ("keyed", {"api_key": "k"})):
            async with in_process(models, **settings) as client:
                found[name] = (await client.get("/openapi.json")).json()
                assert (await client.get("/swagger.json")).json() == found[name]
        return found

    return asyncio.run(fetch())


def test_every_predict_route_of_the_table_is_documented_as_a_post(documents):
    paths = documents["open"]["paths"]
    for route in PREDICT_ROUTES:
        assert "post" in paths[route.path], route.path
        assert paths[route.path]["post"]["summary"] == route.summary


def test_each_model_and_signature_has_an_operation_with_the_exports_example(documents):
    paths = documents["open"]["paths"]
    operation = paths["/models/mnist/serving_default/predict"]["post"]
    example = operation["requestBody"]["content"]["application/json"]["example"]
    assert len(example["instances"][0]["image_input"]) == 784
    assert "`image_input` float32 [-1, 784]" in operation["description"]
    text = paths["/models/imdb_sentiment/predict_text/predict"]["post"]
    assert text["requestBody"]["content"]["application/json"]["example"]["instances"]
    model_parameter = next(p for p in paths["/models/{model}/{signature}/predict"]["post"]
                           ["parameters"] if p["name"] == "model")
    assert model_parameter["schema"]["enum"] == ["imdb_sentiment", "mnist"]


def test_errors_are_documented_and_fastapis_422_is_not(documents):
    for path, operations in documents["open"]["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (method, path)
    predict = documents["open"]["paths"]["/v1/models/{model_and_verb}"]["post"]["responses"]
    assert {"400", "404", "413", "415", "500", "503", "504"} <= set(predict)
    assert predict["503"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}
    assert "401" not in predict


def test_with_a_key_model_routes_declare_it_and_operations_routes_stay_open(documents):
    keyed = documents["keyed"]
    assert set(keyed["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}
    assert "securitySchemes" not in documents["open"]["components"]
    for path, operations in keyed["paths"].items():
        for operation in operations.values():
            is_open = "operations" in operation.get("tags", [])
            assert ("security" in operation) != is_open, path
            assert ("401" in operation["responses"]) != is_open, path


def test_each_model_has_a_v2_operation_with_an_example_per_signature(documents):
    paths = documents["open"]["paths"]
    assert "post" in paths["/v2/models/{model}/infer"]
    operation = paths["/v2/models/mnist/infer"]["post"]
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    tensor = examples["serving_default"]["value"]["inputs"][0]
    assert tensor["datatype"] == "FP32" and tensor["shape"] == [1, 784]
    assert len(tensor["data"]) == 784
    text = paths["/v2/models/imdb_sentiment/infer"]["post"]["requestBody"]["content"]
    request = text["application/json"]["examples"]["predict_text"]["value"]
    assert request["parameters"] == {"signature_name": "predict_text"}
    assert request["inputs"][0]["datatype"] == "BYTES"
