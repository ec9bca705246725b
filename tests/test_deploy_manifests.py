"""deploy/k8s: validated offline, never applied (no cluster runs here).

Kubernetes' own kinds go through kubernetes-validate (the API's JSON schemas, strict: an
unknown or misspelt field fails). KServe's kinds through KServe's own resource models (its
Python SDK, generated from its API): every field must be one they know, every nested
Kubernetes type is checked by the Kubernetes client's models, which forbid unknown fields.
The swarm stack is checked by `docker stack config` when a docker CLI is there.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33.0"  # the oldest version with every field used (preStop sleep)


def documents(folder: Path) -> list[tuple[str, dict]]:
    return [(f"{path.relative_to(K8S)}#{i}", doc) for path in sorted(folder.glob("*.yaml"))
            for i, doc in enumerate(yaml.safe_load_all(path.read_text())) if doc]


BUILT_IN = documents(K8S)
KSERVE = documents(K8S / "kserve")


@pytest.mark.parametrize("name,manifest", BUILT_IN, ids=[n for n, _ in BUILT_IN])
def test_kubernetes_manifests_match_the_api_schemas(name, manifest):
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_the_schemas_do_reject_a_bad_manifest():
    deployment = next(m for _, m in BUILT_IN if m["kind"] == "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pth"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_deployment_agrees_with_the_server():
    deployment = next(m for _, m in BUILT_IN if m["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (api,) = pod["containers"]
    env = {e["name"]: e for e in api["env"]}
    grace = float(env["TFSERVE_SHUTDOWN_GRACE_S"]["value"])
    pre_stop = api["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > grace + pre_stop
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert env["TFSERVE_WORKERS"]["valueFrom"]["resourceFieldRef"]["resource"] == "limits.cpu"
    assert pod["securityContext"]["runAsNonRoot"] is True


# KServe -------------------------------------------------------------------------------------

def _model_class(type_name: str):
    import kserve.models
    import kubernetes.client.models

    return getattr(kserve.models, type_name, None) or getattr(kubernetes.client.models,
                                                              type_name)


def check_against(type_name: str, value, where: str) -> None:
    """Raise if `value` is not a `type_name` of KServe's (or Kubernetes') API models."""
    if match := re.fullmatch(r"list\[(.+)\]", type_name):
        assert isinstance(value, list), f"{where}: a list expected"
        for i, item in enumerate(value):
            check_against(match.group(1), item, f"{where}[{i}]")
        return
    if match := re.fullmatch(r"dict\(str, (.+)\)", type_name):
        assert isinstance(value, dict), f"{where}: a mapping expected"
        for key, item in value.items():
            check_against(match.group(1), item, f"{where}.{key}")
        return
    primitives = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object}
    if type_name in primitives:
        assert isinstance(value, primitives[type_name]), f"{where}: {type_name} expected"
        return
    model = _model_class(type_name)
    assert isinstance(value, dict), f"{where}: an object ({type_name}) expected"
    if hasattr(model, "model_validate"):  # the Kubernetes client's models forbid extras
        model.model_validate(value)
        return
    known = {json_key: attr for attr, json_key in model.attribute_map.items()}
    for key, item in value.items():
        assert key in known, f"{where}: {type_name} has no field {key!r}"
        check_against(model.openapi_types[known[key]], item, f"{where}.{key}")


@pytest.mark.parametrize("name,manifest", KSERVE, ids=[n for n, _ in KSERVE])
def test_kserve_resources_match_kserve_models(name, manifest):
    kinds = {"InferenceService": ("serving.kserve.io/v1beta1", "V1beta1InferenceService"),
             "ServingRuntime": ("serving.kserve.io/v1alpha1", "V1alpha1ServingRuntime")}
    api_version, type_name = kinds[manifest["kind"]]
    assert manifest["apiVersion"] == api_version
    check_against(type_name, manifest, name)


def test_the_kserve_check_rejects_a_misspelt_field():
    runtime = next(m for _, m in KSERVE if m["kind"] == "ServingRuntime")
    broken = yaml.safe_load(yaml.safe_dump(runtime))
    broken["spec"]["supportedModelFormat"] = broken["spec"].pop("supportedModelFormats")
    with pytest.raises(AssertionError, match="supportedModelFormat"):
        check_against("V1alpha1ServingRuntime", broken, "runtime")
    broken = yaml.safe_load(yaml.safe_dump(runtime))
    broken["spec"]["containers"][0]["imagee"] = "x"
    with pytest.raises(Exception, match="imagee"):
        check_against("V1alpha1ServingRuntime", broken, "runtime")


def test_the_inference_service_uses_the_runtime_and_its_protocol():
    runtime = next(m for _, m in KSERVE if m["kind"] == "ServingRuntime")
    service = next(m for _, m in KSERVE if m["kind"] == "InferenceService")
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    formats = {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert model["modelFormat"]["name"] in formats


# Swarm --------------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI here")
def test_docker_accepts_the_swarm_stack():
    result = subprocess.run(["docker", "stack", "config", "-c", "deploy/stack.yml"], cwd=ROOT,
                            capture_output=True, text=True)
    if "unknown command" in result.stderr or "is not a docker command" in result.stderr:
        pytest.skip("this docker CLI has no `stack`")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    api = config["services"]["api"]
    assert api["deploy"]["endpoint_mode"] == "dnsrr"
    assert api["deploy"]["update_config"]["order"] == "start-first"
    assert config["services"]["proxy"]["ports"][0]["mode"] == "host"
