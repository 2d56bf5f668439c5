"""Validators for the deployment files, from registries only: kustomize from the Go module
proxy, the compose specification from the compose-go module, Dapr's CRDs from the pinned
Dapr module, Kubernetes' OpenAPI schemas from kubernetes-validate, hadolint from PyPI, and
a pod's admission (Dapr's injector, then Pod Security) from the pinned Dapr module and
Kubernetes' pod-security-admission module (tests/podcheck)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from threadhost.runtime import PROJECT_ROOT

TOOLS = PROJECT_ROOT / ".tools"
KUSTOMIZE = "sigs.k8s.io/kustomize/kustomize/v5@v5.8.2"
COMPOSE_GO = "github.com/compose-spec/compose-go/v2@v2.16.2"
KUBERNETES_VERSION = "1.33.0"


def _go(*args: str, cwd: Path | None = None, **env: str) -> str:
    return subprocess.run(
        ["go", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=cwd,
        env={**os.environ, **env},
    ).stdout


@cache
def kustomize() -> Path:
    binary = TOOLS / "bin" / "kustomize"
    if not binary.exists():
        _go("install", KUSTOMIZE, GOBIN=str(binary.parent))
    return binary


def kustomize_build(folder: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(kustomize()), "build", str(folder)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _module_dir(module_at_version: str) -> Path:
    return Path(json.loads(_go("mod", "download", "-json", module_at_version))["Dir"])


@cache
def compose_schema() -> dict[str, Any]:
    return json.loads((_module_dir(COMPOSE_GO) / "schema" / "compose-spec.json").read_text())


def _dapr_module() -> Path:
    go_mod = (PROJECT_ROOT / "dapr-runtime" / "go.mod").read_text()
    version = re.search(r"^require github.com/dapr/dapr (v\S+)", go_mod, re.M).group(1)
    return _module_dir(f"github.com/dapr/dapr@{version}")


@cache
def dapr_schemas() -> dict[str, dict[str, Any]]:
    """Kind -> the openAPIV3Schema of Dapr's CRDs, from the runtime version we pin."""
    crds = _dapr_module() / "charts" / "dapr" / "crds"
    schemas = {}
    for path in crds.glob("*.yaml"):
        for crd in yaml.safe_load_all(path.read_text()):
            if crd and crd.get("kind") == "CustomResourceDefinition":
                version_entry = crd["spec"]["versions"][0]
                schemas[crd["spec"]["names"]["kind"]] = version_entry["schema"]["openAPIV3Schema"]
    return schemas


@cache
def podcheck() -> Path:
    """tests/podcheck built (Go's build cache makes a second build quick)."""
    binary = TOOLS / "bin" / "podcheck"
    _go("build", "-o", str(binary), ".", cwd=PROJECT_ROOT / "tests" / "podcheck", CGO_ENABLED="0")
    return binary


# The sidecar injector's settings in the Dapr chart -> the environment variable its
# Deployment template gives the injector (charts/dapr/charts/dapr_sidecar_injector).
_INJECTOR_ENV = {
    "sidecarRunAsNonRoot": "SIDECAR_RUN_AS_NON_ROOT",
    "sidecarRunAsUser": "SIDECAR_RUN_AS_USER",
    "sidecarRunAsGroup": "SIDECAR_RUN_AS_GROUP",
    "sidecarDropALLCapabilities": "SIDECAR_DROP_ALL_CAPABILITIES",
    "sidecarReadOnlyRootFilesystem": "SIDECAR_READ_ONLY_ROOT_FILESYSTEM",
    "nativeSidecar": "NATIVE_SIDECAR_ENABLED",
}


def admitted(pods: list[dict[str, Any]], helm_values: dict[str, str]) -> list[dict[str, Any]]:
    """Each pod ({name, namespace, template}) as a cluster would judge it: Dapr's injector
    (the pinned chart's defaults with `helm_values` over them) adds the sidecar, then
    Pod Security's "restricted" level. Per pod: its containers, allowed, why not."""
    chart = _dapr_module() / "charts" / "dapr" / "charts" / "dapr_sidecar_injector"
    values = yaml.safe_load((chart / "values.yaml").read_text())
    for name, value in helm_values.items():
        if name.startswith("dapr_sidecar_injector."):
            values[name.removeprefix("dapr_sidecar_injector.")] = yaml.safe_load(value)
    env = {
        variable: str(values[key]).lower() if isinstance(values[key], bool) else str(values[key])
        for key, variable in _INJECTOR_ENV.items()
        if values.get(key) not in (None, "")
    }
    # What the chart's template sets beside them: the image, the injector's namespace.
    env |= {
        "SIDECAR_IMAGE": "daprio/daprd",
        "NAMESPACE": "dapr-system",
        "KUBE_CLUSTER_DOMAIN": "cluster.local",
    }
    judged = subprocess.run(
        [str(podcheck())],
        input=json.dumps(pods),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert judged.returncode == 0, judged.stderr
    return json.loads(judged.stdout)
