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

from app.settings import Settings
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
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pth"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    # a gRPC probe takes a port number, not a port's name
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"] = {
        "port": "grpc"}
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
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    grpc_port = int(env["TFSERVE_GRPC_PORT"]["value"])
    assert ports["grpc"] == grpc_port == Settings.model_fields["grpc_port"].default  # 8500
    # readiness and startup through gRPC's health service (SERVING exactly when /readyz is
    # 200), on the port the server listens on; liveness on HTTP, which loading does not fail
    for probe in ("startupProbe", "readinessProbe"):
        assert api[probe]["grpc"] == {"port": grpc_port}, probe
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert env["TFSERVE_WORKERS"]["valueFrom"]["resourceFieldRef"]["resource"] == "limits.cpu"
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_the_services_carry_the_grpc_port_to_the_pods():
    deployment = next(m for _, m in BUILT_IN if m["kind"] == "Deployment")
    (api,) = deployment["spec"]["template"]["spec"]["containers"]
    container_ports = {p["name"] for p in api["ports"]}
    selector = deployment["spec"]["selector"]["matchLabels"]
    services = [m for _, m in BUILT_IN if m["kind"] == "Service"]
    for service in services:
        assert service["spec"]["selector"] == selector, service["metadata"]["name"]
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in container_ports, (service["metadata"]["name"], port)
    (main,) = (s for s in services if s["spec"].get("clusterIP") != "None")
    grpc = next(p for p in main["spec"]["ports"] if p["name"] == "grpc")
    assert grpc["port"] == 8500 and grpc["appProtocol"] == "kubernetes.io/h2c"
    assert any(p["name"] == "http" for p in main["spec"]["ports"])
    # the headless one: every pod's address, for clients that balance calls themselves
    (headless,) = (s for s in services if s["spec"].get("clusterIP") == "None")
    assert [p["name"] for p in headless["spec"]["ports"]] == ["grpc"]


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


RUNTIMES = {m["metadata"]["name"]: m for _, m in KSERVE if m["kind"] == "ServingRuntime"}
SERVICES = [(n, m) for n, m in KSERVE if m["kind"] == "InferenceService"]


@pytest.mark.parametrize("name,service", SERVICES, ids=[n for n, _ in SERVICES])
def test_the_inference_service_uses_a_runtime_and_its_protocol(name, service):
    model = service["spec"]["predictor"]["model"]
    runtime = RUNTIMES[model["runtime"]]
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    formats = {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert model["modelFormat"]["name"] in formats


def test_there_is_an_http_and_a_grpc_runtime_and_a_service_for_each():
    protocols = {name: set(r["spec"]["protocolVersions"]) for name, r in RUNTIMES.items()}
    assert protocols == {"tfserve": {"v1", "v2"}, "tfserve-grpc": {"grpc-v1", "grpc-v2"}}
    used = {m["spec"]["predictor"]["model"]["runtime"] for _, m in SERVICES}
    assert used == set(RUNTIMES)


def test_the_grpc_runtime_routes_to_the_servers_grpc_port():
    (container,) = RUNTIMES["tfserve-grpc"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    # KServe (Knative) routes to the one declared port, in cleartext HTTP/2 for the name h2c
    (port,) = container["ports"]
    assert port["name"] == "h2c"
    assert port["containerPort"] == int(env["TFSERVE_GRPC_PORT"])
    assert container["readinessProbe"]["grpc"] == {"port": port["containerPort"]}
    assert int(env["TFSERVE_PORT"]) != port["containerPort"]  # HTTP elsewhere, on its own
    # the HTTP runtime's one port is the server's HTTP port
    (http,) = RUNTIMES["tfserve"]["spec"]["containers"]
    (http_port,) = http["ports"]
    assert http_port["name"] == "http1"
    assert http_port["containerPort"] == int({e["name"]: e["value"] for e in http["env"]}[
        "TFSERVE_PORT"])


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
    assert api["environment"]["TFSERVE_GRPC_PORT"] == "8500"  # nginx.conf's grpc_pass port
    ports = config["services"]["proxy"]["ports"]
    assert all(p["mode"] == "host" for p in ports)  # no ingress mesh
    assert {p["target"] for p in ports} == {80, 8500}  # HTTP, and gRPC (nginx.conf)


def test_the_proxy_passes_grpc_to_the_replicas_port():
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert re.search(r"^\s*listen 8500 http2;", conf, re.M)
    assert re.search(r"^\s*set \$api_grpc grpc://api:8500;", conf, re.M)
    assert re.search(r"^\s*grpc_next_upstream [^;]*\berror timeout\b", conf, re.M)
    grpc_server = conf[conf.index("listen 8500"):]
    limit = re.search(r"client_max_body_size (\d+)m;", grpc_server)
    # above the replica's own limit: a message too large gets its RESOURCE_EXHAUSTED
    assert int(limit.group(1)) * 2**20 > Settings.model_fields["grpc_max_message_bytes"].default
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["api"]["environment"]["TFSERVE_GRPC_PORT"] == "8500"
    assert "${GRPC_PORT:-8500}:8500" in compose["services"]["proxy"]["ports"]
