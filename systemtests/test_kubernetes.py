"""ops/kubernetes/ against the Kubernetes OpenAPI schemas, offline.

kubernetes-validate bundles the JSON schemas of each Kubernetes release
(converted from the API's OpenAPI spec); strict mode also rejects fields a
resource does not have (a misspelt or misplaced key). The kustomization is
no API resource and has no schema there: its structure is checked here, and
its rendered output (`kubectl kustomize`, when kubectl is installed) is
validated like the files.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")

from conftest import REPO, binary_path  # noqa: E402

# The oldest and the newest minor release still supported when this was
# written (kubernetes-validate 1.37.0 bundles 1.25 … 1.37); override with
# NEWTONPS_KUBERNETES_VERSIONS="1.33.0 1.37.0".
KUBERNETES_VERSIONS = os.environ.get("NEWTONPS_KUBERNETES_VERSIONS", "1.35.0 1.37.0").split()
DIRECTORY = REPO / "ops" / "kubernetes"
KUSTOMIZATION = DIRECTORY / "kustomization.yaml"
MANIFESTS = sorted(p for p in DIRECTORY.glob("*.yaml") if p != KUSTOMIZATION)


def documents(path: Path) -> list:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def validate(resource: dict) -> None:
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(resource, version, strict=True)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid(path):
    resources = documents(path)
    assert resources, f"{path} holds no resource"
    for resource in resources:
        try:
            validate(resource)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path.name}: {resource['kind']}/{resource['metadata']['name']}: {error.message} at "
                        f"{'.'.join(map(str, error.path))} (Kubernetes {', '.join(KUBERNETES_VERSIONS)})")


def pod_specs():
    for path in MANIFESTS:
        for resource in documents(path):
            if resource["kind"] in ("Deployment", "StatefulSet"):
                yield resource, resource["spec"]["template"]


def test_kustomization_lists_every_manifest_and_names_the_image():
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert set(kustomization) <= {"apiVersion", "kind", "labels", "resources", "images", "namespace", "commonAnnotations"}
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFESTS)
    images = {image["name"] for image in kustomization["images"]}
    used = {c["image"] for _, template in pod_specs() for c in template["spec"]["containers"]}
    assert used == images, f"containers use {used}, the kustomization rewrites {images}"
    for label in kustomization["labels"]:
        assert set(label) <= {"pairs", "includeSelectors", "includeTemplates"}
        assert all(isinstance(v, str) for v in label["pairs"].values())


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (for its built-in kustomize) is not installed")
def test_kustomize_output_is_valid():
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(DIRECTORY)], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    resources = [d for d in yaml.safe_load_all(rendered) if d is not None]
    assert len(resources) == sum(len(documents(p)) for p in MANIFESTS)
    for resource in resources:
        validate(resource)
        assert resource["metadata"]["labels"]["app.kubernetes.io/part-of"] == "newtonps"
        if resource["kind"] in ("Deployment", "StatefulSet"):
            assert all(c["image"] == "newtonps:latest" for c in resource["spec"]["template"]["spec"]["containers"])


def test_pods_probe_and_scrape_their_http_port_and_pass_known_flags():
    """Beyond the schema: every flag a container passes is one `newtonps ROLE`
    takes, and the probes and prometheus.io/port name the --http port."""
    binary = binary_path()
    if not binary.exists():
        pytest.fail(f"no newtonps binary at {binary} (set NEWTONPS_BIN)")
    for resource, template in pod_specs():
        for container in template["spec"]["containers"]:
            arguments = container["args"]
            role, flags = arguments[0], [a.split("=", 1)[0] for a in arguments[1:]]
            usage = subprocess.run([str(binary), role, "--help"], capture_output=True, text=True, timeout=60).stdout
            for flag in flags:
                assert flag in usage, f"{resource['metadata']['name']}: `newtonps {role}` has no {flag}"
            http = next(a.split("=", 1)[1] for a in arguments if a.startswith("--http="))
            port = int(http.rsplit(":", 1)[1])
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert ports["http"] == port
            assert template["metadata"]["annotations"]["prometheus.io/port"] == str(port)
            for probe in ("livenessProbe", "readinessProbe"):
                assert container[probe]["httpGet"]["port"] == "http"


def test_the_scrape_configmap_holds_a_prometheus_configuration():
    (configmap,) = documents(DIRECTORY / "prometheus-scrape.yaml")
    configuration = yaml.safe_load(configmap["data"]["prometheus.yml"])
    (job,) = configuration["scrape_configs"]
    assert job["job_name"].startswith("newtonps")  # the dashboard's up{job=~"newtonps.*"}
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]


def test_the_validator_would_catch_a_mistake():
    """The check has teeth offline: a misspelt field and a wrong type fail."""
    (deployment,) = [r for r in documents(DIRECTORY / "workers.yaml") if r["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    container["readinessProbe"] = container.pop("readinesProbe")
    container["ports"][0]["containerPort"] = "9092"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
