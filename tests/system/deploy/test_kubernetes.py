"""The Kubernetes manifests, checked statically (no cluster can run here): each overlay is
rendered, then every resource is validated against the Kubernetes API schemas
(kubernetes-validate, strict) and scanned by checkov with no failed check; the few accepted
checks are justified in an annotation on the resource.

Rendering covers what the overlays use of kustomize: resources, namespace, labels, images,
strategic-merge patches and secret generators from files (kustomize itself is not installable
here; `kubectl apply -k` does the same)."""

from __future__ import annotations

import base64
import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.paths import ROOT

KUBERNETES = ROOT / "deploy" / "kubernetes"
TOOLS = ROOT / ".data" / "tools" / "k8s" / "bin"
OVERLAYS = ("test-network", "production")
CLUSTER_SCOPED = {"Namespace"}

pytestmark = pytest.mark.skipif(not (TOOLS / "checkov").exists(), reason="run .ci/k8s-tools (make test does)")


def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge as kustomize does it for these kinds: maps merge, lists of named items
    merge by name, other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _merge(base[key], value) if key in base else value
        return out
    if isinstance(base, list) and isinstance(patch, list) and all(isinstance(i, dict) and "name" in i for i in patch):
        named = {item.get("name"): item for item in base if isinstance(item, dict)}
        merged = [_merge(named[i["name"]], i) if i["name"] in named else i for i in patch]
        return merged + [item for item in base if item.get("name") not in {i["name"] for i in patch}]
    return copy.deepcopy(patch)


def render(directory: Path) -> list[dict[str, Any]]:
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        docs += render(path) if path.is_dir() else [d for d in yaml.safe_load_all(path.read_text()) if d]
    for generator in spec.get("secretGenerator", []):
        data = {}
        for item in generator.get("files", []):
            key, _, source = item.rpartition("=") if "=" in item else (Path(item).name, "", item)
            path = directory / source
            content = path.read_bytes() if path.exists() else b"(supplied at deployment)"
            data[key] = base64.b64encode(content).decode()
        docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": generator["name"]}, "data": data})
    for patch_entry in spec.get("patches", []):
        for patch in yaml.safe_load_all((directory / patch_entry["path"]).read_text()):
            targets = [
                d for d in docs if (d["kind"], d["metadata"]["name"]) == (patch["kind"], patch["metadata"]["name"])
            ]
            assert len(targets) == 1, f"patch {patch_entry['path']} matches {len(targets)} resources"
            docs[docs.index(targets[0])] = _merge(targets[0], patch)
    for doc in docs:
        if spec.get("namespace") and doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"]["namespace"] = spec["namespace"]
        for label in spec.get("labels", []):
            doc["metadata"].setdefault("labels", {}).update(label["pairs"])
        for image in spec.get("images", []):
            for pod in _pod_specs(doc):
                for container in pod.get("containers", []):
                    name = container["image"].split("@")[0].rsplit(":", 1)[0]
                    if name == image["name"]:
                        new = image.get("newName", name)
                        container["image"] = (
                            f"{new}@{image['digest']}" if "digest" in image else f"{new}:{image['newTag']}"
                        )
    return docs


def _pod_specs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    template = doc.get("spec", {}).get("template", {})
    return [template["spec"]] if "spec" in template else []


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp(request.param)
    for number, doc in enumerate(render(KUBERNETES / "overlays" / request.param)):
        (out / f"{number:02d}-{doc['kind'].lower()}-{doc['metadata']['name']}.yaml").write_text(yaml.safe_dump(doc))
    return request.param, out


def test_every_overlay_has_the_resources_a_production_deployment_needs(rendered: tuple[str, Path]) -> None:
    kinds = sorted({yaml.safe_load(p.read_text())["kind"] for p in rendered[1].iterdir()})
    assert kinds == sorted(
        {"Namespace", "ServiceAccount", "ConfigMap", "Secret", "Deployment", "Service", "Ingress",
         "HorizontalPodAutoscaler", "PodDisruptionBudget", "Job", "NetworkPolicy"}
    )  # fmt: skip
    deployment = next(
        yaml.safe_load(p.read_text()) for p in rendered[1].iterdir() if p.name.split("-")[1] == "deployment"
    )
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["spec"]["replicas"] >= 2
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v1/ping"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["image"].startswith("registry.example.com/peppol-gateway")


def test_every_resource_is_valid_against_the_kubernetes_schemas(rendered: tuple[str, Path]) -> None:
    files = sorted(str(p) for p in rendered[1].iterdir())
    done = subprocess.run(
        [str(TOOLS / "kubernetes-validate"), "--strict", "--no-warn", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_checkov_finds_no_failed_check(rendered: tuple[str, Path]) -> None:
    done = subprocess.run(
        [str(TOOLS / "checkov"), "-d", str(rendered[1]), "--framework", "kubernetes", "--output", "json", "--quiet"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [(c["check_id"], c["resource"], c["check_name"]) for r in reports for c in r["results"]["failed_checks"]]
    assert failed == []
    passed = sum(r["summary"]["passed"] for r in reports)
    assert passed > 50, "checkov scanned the resources"
