"""deploy/k8s/ read with pyyaml and checked: commands, names and ports line up, secrets come from Secrets,
Ray token auth is on everywhere and the dashboard is not exposed outside the cluster."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy import manifests as m


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return m.load_k8s()


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


@pytest.fixture(scope="module")
def configmaps(objects: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {
        name: {k: str(v) for k, v in o["data"].items()} for name, o in by_kind(objects, "ConfigMap").items()
    }


@pytest.fixture(scope="module")
def raycluster(objects: list[dict[str, Any]]) -> dict[str, Any]:
    clusters = by_kind(objects, "RayCluster")
    assert len(clusters) == 1
    return next(iter(clusters.values()))


def container(objects: list[dict[str, Any]], suffix: str) -> dict[str, Any]:
    found = [c for where, c in (x for o in objects for x in m.pod_containers(o)) if where.endswith(suffix)]
    assert len(found) == 1, f"expected one container ending in {suffix!r}, found {len(found)}"
    return found[0]


def test_kustomization_lists_every_manifest_and_maps_every_image(objects: list[dict[str, Any]]) -> None:
    kustomization = m.load_yaml_documents(m.K8S_DIR / "kustomization.yaml")[0]
    files = {p.name for p in m.K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    mapped = {image["name"] for image in kustomization["images"]}
    used = {c["image"] for o in objects for _, c in m.pod_containers(o)}
    assert used == mapped == {"schedsearch-cpu", "schedsearch-cuda"}


def test_the_deployment_has_its_parts(objects: list[dict[str, Any]]) -> None:
    assert set(by_kind(objects, "Deployment")) == {"schedsearch-api", "schedsearch-dispatcher"}
    assert set(by_kind(objects, "Service")) == {"schedsearch-api"}
    # No Secret objects in the repository: they are created with kubectl (the README shows how).
    assert by_kind(objects, "Secret") == {}


def test_every_command_exists_in_the_project(objects: list[dict[str, Any]]) -> None:
    subcommands = m.cli_subcommands()
    problems: list[str] = []
    for obj in objects:
        for where, c in m.pod_containers(obj):
            problems += m.check_command(
                m.command_argv(c.get("command")), where=where, subcommands=subcommands
            )
    assert problems == []


def test_migration_runs_before_the_api(objects: list[dict[str, Any]]) -> None:
    api = by_kind(objects, "Deployment")["schedsearch-api"]["spec"]["template"]["spec"]
    assert [c["command"] for c in api["initContainers"]] == [["schedsearch", "migrate"]]
    assert api["containers"][0]["command"] == ["schedsearch", "serve"]


def test_database_url_and_ray_token_come_from_secrets(
    objects: list[dict[str, Any]], configmaps: dict[str, dict[str, str]]
) -> None:
    problems: list[str] = []
    refs: dict[str, set[tuple[str, str]]] = {}
    for obj in objects:
        for where, c in m.pod_containers(obj):
            problems += m.check_k8s_env_secrets(c, where=where)
            for item in c.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None:
                    refs.setdefault(item["name"], set()).add((ref["name"], ref["key"]))
    for name, data in configmaps.items():
        for key, value in data.items():
            if m.SECRET_NAME.search(key) or key.endswith("DATABASE_URL") or m.url_password(value):
                problems.append(f"ConfigMap {name}: {key} is a secret in a ConfigMap")
    assert problems == []
    # One Secret per value, used the same way by every container that needs it.
    assert refs == {
        "SCHEDSEARCH_DATABASE_URL": {("schedsearch-db", "url")},
        "RAY_AUTH_TOKEN": {("schedsearch-ray-token", "token")},
    }
    api_init = container(objects, "schedsearch-api/migrate")
    dispatcher = container(objects, "schedsearch-dispatcher/dispatcher")
    head = container(objects, "/head/ray-head")  # the job drivers run on the head
    for c in (api_init, container(objects, "schedsearch-api/api"), dispatcher, head):
        assert m.k8s_environment(c, configmaps)["SCHEDSEARCH_DATABASE_URL"] == "<secretKeyRef>"


def test_ray_token_auth_is_on_for_every_node_and_the_dispatcher(
    objects: list[dict[str, Any]], configmaps: dict[str, dict[str, str]], raycluster: dict[str, Any]
) -> None:
    problems: list[str] = []
    for where, c in m.pod_containers(raycluster):
        problems += m.check_ray_auth(m.k8s_environment(c, configmaps), where=where, secret_ref=True)
    dispatcher = container(objects, "schedsearch-dispatcher/dispatcher")
    problems += m.check_ray_auth(
        m.k8s_environment(dispatcher, configmaps), where="dispatcher", secret_ref=True
    )
    assert problems == []


def test_dispatcher_ray_address_is_the_kuberay_head_service(
    objects: list[dict[str, Any]], configmaps: dict[str, dict[str, str]], raycluster: dict[str, Any]
) -> None:
    dispatcher = container(objects, "schedsearch-dispatcher/dispatcher")
    address = m.k8s_environment(dispatcher, configmaps)["SCHEDSEARCH_RAY_ADDRESS"]
    head = container([raycluster], "/head/ray-head")
    ports = {p["name"]: p["containerPort"] for p in head["ports"]}
    # KubeRay names the head Service "<cluster>-head-svc" and exposes the head container's named ports.
    assert m.host_port(address) == (f"{raycluster['metadata']['name']}-head-svc", ports["gcs-server"])
    # Ray Jobs are submitted through the head Service's dashboard port.
    dashboard_url = m.k8s_environment(dispatcher, configmaps)["SCHEDSEARCH_RAY_DASHBOARD_URL"]
    assert m.host_port(dashboard_url) == (f"{raycluster['metadata']['name']}-head-svc", ports["dashboard"])
    # A driver must run the head's Ray version: the same image.
    assert dispatcher["image"] == head["image"]


def test_ray_version_matches_the_installed_ray(raycluster: dict[str, Any]) -> None:
    from importlib.metadata import version

    assert raycluster["spec"]["rayVersion"] == version("ray")


def test_gpu_worker_group_autoscales_within_bounds(raycluster: dict[str, Any]) -> None:
    assert raycluster["spec"]["enableInTreeAutoscaling"] is True
    groups = raycluster["spec"]["workerGroupSpecs"]
    gpu = next(g for g in groups if g["groupName"] == "gpu")
    assert 0 <= gpu["minReplicas"] <= gpu["replicas"] <= gpu["maxReplicas"]
    assert gpu["maxReplicas"] > gpu["minReplicas"], "an autoscaling group needs room to scale"
    (worker,) = gpu["template"]["spec"]["containers"]
    limits = worker["resources"]["limits"]
    # Ray must advertise the GPUs the pod is given, and the pod runs the CUDA image.
    assert str(limits["nvidia.com/gpu"]) == gpu["rayStartParams"]["num-gpus"]
    assert worker["image"] == "schedsearch-cuda"


def test_dashboard_is_not_exposed_outside_the_cluster(
    objects: list[dict[str, Any]], raycluster: dict[str, Any]
) -> None:
    assert raycluster["spec"]["headGroupSpec"].get("serviceType", "ClusterIP") == "ClusterIP"
    assert by_kind(objects, "Ingress") == {}
    for name, service in by_kind(objects, "Service").items():
        ports = service["spec"]["ports"]
        assert all(p.get("targetPort") != 8265 and p["port"] != 8265 for p in ports), name


def test_api_service_targets_the_api_container_port(
    objects: list[dict[str, Any]], configmaps: dict[str, dict[str, str]]
) -> None:
    service = by_kind(objects, "Service")["schedsearch-api"]
    deployment = by_kind(objects, "Deployment")["schedsearch-api"]
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    api = container(objects, "schedsearch-api/api")
    env = m.k8s_environment(api, configmaps)
    named = {p["name"]: p["containerPort"] for p in api["ports"]}
    (port,) = service["spec"]["ports"]
    assert named[port["targetPort"]] == int(env["SCHEDSEARCH_PORT"])
    assert env["SCHEDSEARCH_HOST"] == "0.0.0.0"
    assert env["SCHEDSEARCH_EMBEDDED_DISPATCHER"] == "false"
    assert api["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": port["targetPort"]}


def test_every_setting_in_the_configmap_is_a_real_setting(configmaps: dict[str, dict[str, str]]) -> None:
    from service.settings import Settings

    known = {f"SCHEDSEARCH_{name.upper()}" for name in Settings.model_fields}
    for name, data in configmaps.items():
        unknown = sorted(k for k in data if k.startswith("SCHEDSEARCH_") and k not in known)
        assert unknown == [], f"ConfigMap {name} sets variables no setting reads"
