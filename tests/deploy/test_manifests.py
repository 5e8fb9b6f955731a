"""deploy/k8s validates against the Kubernetes schemas, offline, and wires the three processes right.

The schemas are the ones the ``kubernetes-validate`` package ships (JSON Schema per kind and API
version, generated from Kubernetes' OpenAPI), read from site-packages: no network. ``strict``
schemas reject unknown fields, so a misspelt ``readinesProbe`` fails here rather than being
silently dropped by the API server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.support import K8S, entrypoint, k8s_docs, k8s_files

# The oldest Kubernetes release the README claims, and the newest whose schemas the package ships.
VERSIONS = ("1.27.0", "1.37.0")
DOCS = k8s_docs()
ROLES = {"api", "edge", "worker"}


def _id(item: tuple[Path, dict[str, Any]]) -> str:
    path, doc = item
    return f"{path.name}:{doc['kind']}/{doc['metadata']['name']}"


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in DOCS if doc["kind"] == kind}


def deployments() -> dict[str, dict[str, Any]]:
    """Deployments by role (their component label)."""
    return {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in by_kind("Deployment").values()}


def pod_specs() -> list[dict[str, Any]]:
    specs = [d["spec"]["template"]["spec"] for d in by_kind("Deployment").values()]
    return specs + [j["spec"]["template"]["spec"] for j in by_kind("Job").values()]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("item", DOCS, ids=[_id(item) for item in DOCS])
def test_manifest_is_valid_against_the_kubernetes_schema(item: tuple[Path, dict[str, Any]], version: str) -> None:
    _, doc = item
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        pytest.fail(f"{_id(item)} is not a valid {doc['kind']} for Kubernetes {version}: {e.message}")


def test_strict_schema_validation_catches_a_misspelt_field() -> None:
    edge = yaml.safe_load_all((K8S / "edge.yaml").read_text()).__next__()
    edge["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(edge, VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest_and_nothing_else() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(p.name for p in k8s_files())
    assert kustomization["namespace"] == by_kind("Namespace").popitem()[0]
    assert [image["name"] for image in kustomization["images"]] == ["linkedge"]


def test_required_objects_exist() -> None:
    assert set(deployments()) == ROLES
    assert set(by_kind("Service")) == {"linkedge-api", "linkedge-edge"}
    assert set(by_kind("Job")) == {"linkedge-migrate"}
    assert by_kind("ConfigMap") and by_kind("Secret")
    (hpa,) = by_kind("HorizontalPodAutoscaler").values()
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "linkedge-edge"}
    assert hpa["spec"]["minReplicas"] >= 2
    pdb_selectors = [p["spec"]["selector"]["matchLabels"] for p in by_kind("PodDisruptionBudget").values()]
    assert deployments()["edge"]["spec"]["selector"]["matchLabels"] in pdb_selectors


def _probe_path(container: dict[str, Any], probe: str) -> tuple[str, Any]:
    get = container[probe]["httpGet"]
    return get["path"], get["port"]


def _container(role: str) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployments()[role]["spec"]["template"]["spec"]["containers"]
    (container,) = containers
    return container


@pytest.mark.parametrize("role", ["api", "edge"])
def test_api_and_edge_probe_readyz_and_healthz(role: str) -> None:
    container = _container(role)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == {"api": 8000, "edge": 8080}[role]
    assert _probe_path(container, "readinessProbe") == ("/readyz", "http")
    assert _probe_path(container, "livenessProbe") == ("/healthz", "http")
    assert _probe_path(container, "startupProbe") == ("/healthz", "http")


def test_edge_probes_outwait_the_liveness_check_and_the_bound_is_set() -> None:
    # /healthz may make one probe connection (handshake, then PING, each bounded) before it answers.
    from redirector.liveness import PROBE_TIMEOUT

    container = _container("edge")
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["timeoutSeconds"] > 2 * PROBE_TIMEOUT, probe
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert float(env["EDGE_LIVENESS_BOUND"]) > 0


def test_edge_metrics_are_scraped_on_a_port_the_service_does_not_expose() -> None:
    container = _container("edge")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert ports["metrics"] == int(env["EDGE_METRICS_PORT"]) != ports["http"]
    annotations = deployments()["edge"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ports["metrics"])
    assert annotations["prometheus.io/path"] == "/metrics"
    (service,) = [
        s for s in by_kind("Service").values() if s["metadata"]["labels"]["app.kubernetes.io/component"] == "edge"
    ]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]


def test_worker_probes_its_metrics_port() -> None:
    # The worker listens only on WORKER_METRICS_PORT: /metrics answering is up and ready, and
    # /healthz there fails only when one of its loops is wedged (an outage leaves it 200).
    container = _container("worker")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": int(env["WORKER_METRICS_PORT"])}
    for probe in ("startupProbe", "readinessProbe"):
        assert _probe_path(container, probe) == ("/metrics", "metrics")
    assert _probe_path(container, "livenessProbe") == ("/healthz", "metrics")


def test_every_container_has_requests_limits_and_a_locked_down_security_context() -> None:
    for spec in pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001  # the image's USER
        mounts_needed = set()
        for container in spec["containers"] + spec.get("initContainers", []):
            resources = container["resources"]
            assert set(resources) == {"requests", "limits"}, container["name"]
            assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            mounts_needed |= {m["name"] for m in container.get("volumeMounts", [])}
        assert mounts_needed <= {v["name"] for v in spec.get("volumes", [])}


def test_containers_run_roles_the_entry_point_knows() -> None:
    roles = set(entrypoint().NEEDS)
    seen = set()
    for spec in pod_specs():
        for container in spec["containers"] + spec.get("initContainers", []):
            assert container["image"].split(":")[0] == "linkedge"
            (role,) = container["args"]
            assert role in roles
            seen.add(role)
    assert seen == roles


def _env_names(container: dict[str, Any]) -> set[str]:
    return {e["name"] for e in container.get("env", [])}


def test_each_container_gets_the_urls_its_role_needs_and_the_edge_never_the_database() -> None:
    needs = entrypoint().NEEDS
    secrets = {name: set(doc["stringData"]) for name, doc in by_kind("Secret").items()}
    config_maps = set(by_kind("ConfigMap"))
    for spec in pod_specs():
        for container in spec["containers"] + spec.get("initContainers", []):
            names = _env_names(container)
            (role,) = container["args"]
            assert set(needs[role]) <= names, container["name"]
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]], entry
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps
    edge = _container("edge")
    assert "DATABASE_URL" not in _env_names(edge)
    for config_map in by_kind("ConfigMap").values():
        assert "DATABASE_URL" not in config_map["data"]
    assert {"REDIS_URL", "VISITOR_SALT"} <= _env_names(edge)


def test_services_select_their_deployments_and_name_real_ports() -> None:
    roles = deployments()
    for service in by_kind("Service").values():
        role = service["metadata"]["labels"]["app.kubernetes.io/component"]
        template = roles[role]["spec"]["template"]
        assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
        port_names = {p["name"] for c in template["spec"]["containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names


def test_deployment_selectors_match_their_pod_labels() -> None:
    for deployment in by_kind("Deployment").values():
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_api_and_worker_wait_for_migrations_and_the_job_runs_them() -> None:
    for role in ("api", "worker"):
        (init,) = deployments()[role]["spec"]["template"]["spec"]["initContainers"]
        assert init["args"] == ["wait-migrations"]
    (job,) = by_kind("Job").values()
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]


def test_edge_shutdown_has_time_to_flush_events() -> None:
    spec = deployments()["edge"]["spec"]["template"]["spec"]
    # The edge's supervisor gives its workers 30 s after SIGTERM (redirector.serve.KILL_AFTER).
    from redirector.serve import KILL_AFTER

    pre_stop = spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert spec["terminationGracePeriodSeconds"] >= KILL_AFTER + int(pre_stop[-1])
