"""Runs a deployment file as it is written, as local processes with the real binaries.

These machines have neither a container engine nor a cluster, so each pod or service
becomes processes: the app as the image would run it (its CMD and ENV from the
Dockerfile, the container's environment with Secrets and ConfigMaps resolved), a daprd
whose flags come from what the file says (a pod's `dapr.io/*` annotations, a compose
service's command), and the control plane. On Kubernetes, Sentry runs with mTLS, and
each daprd has its pod's namespace, so access control and namespaces hold as in a
cluster.

What had to be translated, and why (nothing else is):
- Every pod shares this machine's loopback: each gets its own free ports for what the
  file says (the app's 8000, daprd's 3500/50001/50002/9090, ...), and the app's
  `--port`, daprd's `--app-port` and `DAPR_HTTP_PORT` follow.
- Cluster and compose DNS names (`redis-master.<ns>.svc.cluster.local:6379`, `redis:6379`,
  `placement:50005`) become the loopback servers started here (`hosts`).
- Kubernetes' secret store becomes a local file secret store with the same Secrets.
- daprd runs in standalone mode: the Components, Resiliency and Configurations that
  Kubernetes' operator would hand it are files, filtered by namespace as the operator
  does (daprd's NAMESPACE).
- External endpoints (the identity provider's JWKS, the OTLP collector) are replaced by
  whatever the test says in `hosts`, on loopback (`OtlpCollector` stands in for the
  collector).
- The control plane runs as the Helm chart does, with the `--set` values of the
  `helm upgrade --install dapr` command that docs/deploy.md gives.
- A pod that goes is sent what the kubelet sends (`terminate_pod`); a new replica gets
  new ports, as a new pod gets a new IP.
- Name resolution is daprd's mDNS, which is machine-wide and knows no namespaces: two
  rehearsed clusters with the same app-ids must not run at once.
- Container resources, probes' timings, security contexts, Services, HPAs and PDBs are
  read and checked, not enforced: the test reaches each replica directly.

Anything else a file says that this module does not know raises Untranslatable.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import grpc
import yaml

from threadhost.processes import Process, free_port
from threadhost.runtime import PROJECT_ROOT

LOOPBACK = "127.0.0.1"
CONTROL_PLANE_NAMESPACE = "dapr-system"
CONTROL_PLANE_TRUST_DOMAIN = "cluster.local"


class Untranslatable(ValueError):
    """A deployment file says something the rehearsal does not know how to run."""


def _only(obj: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(obj) - allowed
    if unknown:
        raise Untranslatable(f"{where}: {sorted(unknown)} not understood")


# The image's folders (Dockerfile) and where the project keeps what they hold.
IMAGE_PATHS = {"/app/agents": str(PROJECT_ROOT / "agents")}


@dataclass
class Image:
    """What the Dockerfile gives every container of the image: its CMD and ENV, with
    the image's own paths mapped to the project's."""

    cmd: list[str]
    env: dict[str, str]

    @classmethod
    def of(cls, dockerfile: Path = PROJECT_ROOT / "Dockerfile") -> Image:
        text = dockerfile.read_text().replace("\\\n", " ")
        final = text[text.rindex("\nFROM ") :]  # the last stage is the image
        cmd: list[str] = []
        env: dict[str, str] = {}
        for line in final.splitlines():
            word, _, rest = line.strip().partition(" ")
            if word == "CMD":
                cmd = json.loads(rest)
            elif word == "ENV":
                env.update(dict(item.split("=", 1) for item in shlex.split(rest)))
        paths = {
            **IMAGE_PATHS,
            "/opt/threadhost/bin": str(Path(sys.executable).parent),
            "$PATH": os.environ.get("PATH", ""),
        }
        for name, value in env.items():
            for inside, here in paths.items():
                value = value.replace(inside, here)
            env[name] = value
        return cls(cmd, env)

    def command(self, port: int) -> list[str]:
        """The CMD on this machine: this Python, loopback, the pod's own port."""
        argv = [sys.executable if self.cmd[0] == "python" else self.cmd[0], *self.cmd[1:]]
        argv[argv.index("--host") + 1] = LOOPBACK
        argv[argv.index("--port") + 1] = str(port)
        return argv


@dataclass
class Pod:
    """One replica: an app process and its daprd."""

    name: str
    namespace: str
    app_id: str
    app_argv: list[str]
    app_env: dict[str, str]
    app_port: int
    daprd_flags: list[str]
    daprd_env: dict[str, str]
    http_port: int
    grace: float = 30  # terminationGracePeriodSeconds
    processes: list[Process] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.app_port}"

    @property
    def dapr_url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"


# dapr.io/* annotations -> daprd flags, as Dapr's sidecar injector maps them.
_FLAGS = {
    "dapr.io/app-id": "--app-id",
    "dapr.io/log-level": "--log-level",
    "dapr.io/metrics-port": None,  # a port of its own per pod: set below
    "dapr.io/actors-disseminate-timeout": "--actors-disseminate-timeout",
    "dapr.io/graceful-shutdown-seconds": "--dapr-graceful-shutdown-seconds",
    "dapr.io/max-body-size": "--max-body-size",
    "dapr.io/app-health-check-path": "--app-health-check-path",
    "dapr.io/app-health-probe-interval": "--app-health-probe-interval",
    "dapr.io/app-health-probe-timeout": "--app-health-probe-timeout",
    "dapr.io/app-health-threshold": "--app-health-threshold",
}
_SWITCHES = {
    "dapr.io/log-as-json": "--log-as-json",
    "dapr.io/enable-metrics": None,
    "dapr.io/enable-app-health-check": "--enable-app-health-check",
}
# Read and checked, not enforced on one machine.
_NOT_ENFORCED = {
    "dapr.io/sidecar-cpu-request",
    "dapr.io/sidecar-cpu-limit",
    "dapr.io/sidecar-memory-request",
    "dapr.io/sidecar-memory-limit",
    "dapr.io/sidecar-seccomp-profile-type",
}
_HANDLED = {
    "dapr.io/enabled",
    "dapr.io/app-port",
    "dapr.io/config",
    "dapr.io/app-token-secret",
    "dapr.io/env",
}


@dataclass
class Kubernetes:
    """A rendered overlay (kustomize build), as pods, files and secrets."""

    objects: list[dict[str, Any]]
    hosts: Mapping[str, str]  # names and URLs the file uses -> their loopback stand-ins
    folder: Path
    image: Image = field(default_factory=Image.of)
    # Secrets the operator creates beforehand (docs/deploy.md), by name.
    operator_secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Extra environment for every app container: what an operator's image would add.
    app_env: Mapping[str, str] = field(default_factory=dict)

    def _of(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def _local(self, value: str) -> str:
        return _replace_all(value, self.hosts)

    def secrets(self) -> dict[str, dict[str, str]]:
        """The overlay's Secrets, then those the operator made beforehand."""
        found = {name: dict(keys) for name, keys in self.operator_secrets.items()}
        for secret in self._of("Secret"):
            keys = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
            found[secret["metadata"]["name"]] = {**keys, **secret.get("stringData", {})}
        return {name: {k: self._local(v) for k, v in keys.items()} for name, keys in found.items()}

    def readable_secrets(self) -> set[str]:
        """The Secrets the pods' service account may `get` (a Kubernetes secret store
        reads with it): the resourceNames of the Roles bound to it. Every Deployment
        runs as one account; without one it is `default`, which may read none."""
        accounts = {
            d["spec"]["template"]["spec"].get("serviceAccountName", "default")
            for d in self._of("Deployment")
        }
        assert len(accounts) == 1, f"one service account for every pod, not {accounts}"
        account = {"kind": "ServiceAccount", "name": accounts.pop()}
        roles = {
            binding["roleRef"]["name"]
            for binding in self._of("RoleBinding")
            if binding["roleRef"]["kind"] == "Role"
            and account in [{"kind": s["kind"], "name": s["name"]} for s in binding["subjects"]]
        }
        return {
            name
            for role in self._of("Role")
            if role["metadata"]["name"] in roles
            for rule in role["rules"]
            if "secrets" in rule["resources"] and "get" in rule["verbs"]
            for name in rule.get("resourceNames", [])
        }

    def write_resources(self, secrets: dict[str, dict[str, str]]) -> dict[str, Path]:
        """Components and Resiliency per namespace, and each Configuration as a file. The
        Kubernetes secret store becomes a file holding the Secrets the pods' service
        account may read, no others (daprd reads them as that account)."""
        secrets_file = self.folder / "secrets.json"
        readable = self.readable_secrets()
        secrets_file.write_text(json.dumps({n: k for n, k in secrets.items() if n in readable}))
        (self.folder / "resources").mkdir(parents=True, exist_ok=True)
        for doc in self._of("Component") + self._of("Resiliency"):
            doc = json.loads(self._local(json.dumps(doc)))
            if doc["kind"] == "Component" and doc["spec"]["type"] == "secretstores.kubernetes":
                doc["spec"] = {
                    "type": "secretstores.local.file",
                    "version": "v1",
                    "metadata": [
                        {"name": "secretsFile", "value": str(secrets_file)},
                        {"name": "multiValued", "value": "true"},
                    ],
                }
            name = f"{doc['kind']}-{doc['metadata']['name']}.yaml".lower()
            (self.folder / "resources" / name).write_text(yaml.safe_dump(doc))
        configs = {}
        for doc in self._of("Configuration"):
            doc = json.loads(self._local(json.dumps(doc)))
            path = self.folder / f"configuration-{doc['metadata']['name']}.yaml"
            path.write_text(yaml.safe_dump(doc))
            configs[doc["metadata"]["name"]] = path
        return configs

    @cached_property
    def _rendered(
        self,
    ) -> tuple[dict[str, Path], dict[str, dict[str, str]], dict[str, dict[str, str]]]:
        """Configurations as files, Secrets, ConfigMaps: written once for every pod."""
        secrets = self.secrets()
        configs = self.write_resources(secrets)
        config_maps = {c["metadata"]["name"]: c.get("data", {}) for c in self._of("ConfigMap")}
        return configs, secrets, config_maps

    def deployment(self, name: str) -> dict[str, Any]:
        [found] = [d for d in self._of("Deployment") if d["metadata"]["name"] == name]
        _only(found["spec"], {"replicas", "strategy", "selector", "template"}, name)
        return found

    def pods(self, control_plane: ControlPlane) -> list[Pod]:
        """Every replica of every Deployment, named `<deployment>-<n>`."""
        return [
            self.pod(d["metadata"]["name"], f"{d['metadata']['name']}-{n}", control_plane)
            for d in self._of("Deployment")
            for n in range(d["spec"].get("replicas", 1))
        ]

    def pod(self, deployment: str, name: str, control_plane: ControlPlane) -> Pod:
        """One replica of `deployment`: a new pod with ports of its own, as a rollout or
        the replacement of a crashed pod makes."""
        return self._pod(name, self.deployment(deployment), control_plane, *self._rendered)

    def _mounted(
        self,
        spec: dict[str, Any],
        container: dict[str, Any],
        config_maps: dict[str, dict[str, str]],
        name: str,
    ) -> dict[str, Path]:
        """The container's ConfigMap volumes, written as folders: mount path -> folder."""
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        mounted = {}
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            _only(volume, {"name", "configMap"}, f"{name} volume {volume['name']}")
            _only(mount, {"name", "mountPath", "readOnly"}, f"{name} mount {mount['name']}")
            config_map = volume["configMap"]["name"]
            if config_map not in config_maps:
                raise Untranslatable(f"{name}: ConfigMap {config_map} does not exist")
            folder = self.folder / "config-maps" / config_map
            folder.mkdir(parents=True, exist_ok=True)
            for file, text in config_maps[config_map].items():
                (folder / file).write_text(text)
            mounted[mount["mountPath"]] = folder
        return mounted

    def _pod(
        self,
        name: str,
        deployment: dict[str, Any],
        control_plane: ControlPlane,
        configs: dict[str, Path],
        secrets: dict[str, dict[str, str]],
        config_maps: dict[str, dict[str, str]],
    ) -> Pod:
        namespace = deployment["metadata"].get("namespace", "default")
        template = deployment["spec"]["template"]
        spec, annotations = template["spec"], template["metadata"].get("annotations", {})
        _only(
            spec,
            {
                "containers",
                "terminationGracePeriodSeconds",
                "securityContext",
                "volumes",
                "serviceAccountName",
            },
            name,
        )
        [container] = spec["containers"]
        _only(
            container,
            {
                "name",
                "image",
                "env",
                "ports",
                "readinessProbe",
                "livenessProbe",
                "resources",
                "securityContext",
                "volumeMounts",
            },
            f"{name} container",
        )
        mounted = self._mounted(spec, container, config_maps, name)
        unknown = set(annotations) - set(_FLAGS) - set(_SWITCHES) - _NOT_ENFORCED - _HANDLED
        if unknown:
            raise Untranslatable(f"{name}: annotations {sorted(unknown)} not understood")
        if annotations.get("dapr.io/enabled") != "true":
            raise Untranslatable(f"{name}: a pod without a Dapr sidecar")
        container_port = {p["containerPort"] for p in container.get("ports", [])}
        if {int(annotations["dapr.io/app-port"])} != container_port:
            raise Untranslatable(f"{name}: dapr.io/app-port is not the container's port")

        app_port, http_port, grpc_port = free_port(), free_port(), free_port()
        env = {
            **self.image.env,
            **{k: self._local(v) for k, v in self.app_env.items()},
            "DAPR_HTTP_PORT": str(http_port),
            "DAPR_GRPC_PORT": str(grpc_port),
        }
        for item in container.get("env", []):
            env[item["name"]] = self._env_value(item, name, namespace, secrets, config_maps)
        # A folder of the image that a ConfigMap covers: the ConfigMap's files, not the
        # project's.
        for inside, folder in mounted.items():
            if inside in IMAGE_PATHS:
                env = {k: v.replace(IMAGE_PATHS[inside], str(folder)) for k, v in env.items()}
        daprd_env = {
            "NAMESPACE": namespace,
            "POD_NAME": name,
            "DAPR_HOST_IP": LOOPBACK,
            **control_plane.trust_env(),
        }
        for pair in filter(None, annotations.get("dapr.io/env", "").split(",")):
            variable, _, value = pair.strip().partition("=")
            daprd_env[variable] = value
        if secret := annotations.get("dapr.io/app-token-secret"):
            daprd_env["APP_API_TOKEN"] = secrets[secret]["token"]
        flags = [
            "--mode",
            "standalone",
            "--app-port",
            str(app_port),
            "--app-channel-address",
            LOOPBACK,
            "--dapr-listen-addresses",
            LOOPBACK,
            "--dapr-http-port",
            str(http_port),
            "--dapr-grpc-port",
            str(grpc_port),
            "--dapr-internal-grpc-port",
            str(free_port()),
            "--dapr-internal-grpc-listen-address",
            LOOPBACK,
            "--metrics-port",
            str(free_port()),
            "--metrics-listen-address",
            LOOPBACK,
            "--config",
            str(configs[annotations["dapr.io/config"]]),
            "--resources-path",
            str(self.folder / "resources"),
            *control_plane.daprd_flags(),
        ]
        for key, value in annotations.items():
            if _FLAGS.get(key):
                flags += [_FLAGS[key], value]
            elif _SWITCHES.get(key) and value == "true":
                flags.append(_SWITCHES[key])
        return Pod(
            name,
            namespace,
            annotations["dapr.io/app-id"],
            self.image.command(app_port),
            env,
            app_port,
            flags,
            daprd_env,
            http_port,
            grace=float(spec.get("terminationGracePeriodSeconds", 30)),
        )

    def _env_value(
        self,
        item: dict[str, Any],
        pod: str,
        namespace: str,
        secrets: dict[str, dict[str, str]],
        config_maps: dict[str, dict[str, str]],
    ) -> str:
        if "value" in item:
            return self._local(item["value"])
        source = item["valueFrom"]
        if ref := source.get("secretKeyRef"):
            if ref["name"] not in secrets:
                raise Untranslatable(f"{pod}: Secret {ref['name']} does not exist")
            return secrets[ref["name"]][ref["key"]]
        if ref := source.get("configMapKeyRef"):
            return config_maps[ref["name"]][ref["key"]]
        if ref := source.get("fieldRef"):
            fields = {"metadata.name": pod, "metadata.namespace": namespace}
            if ref["fieldPath"] not in fields:
                raise Untranslatable(f"{pod}: fieldRef {ref['fieldPath']} not understood")
            return fields[ref["fieldPath"]]
        raise Untranslatable(f"{pod}: env {item['name']} from {sorted(source)}")


class OtlpCollector:
    """The cluster's OpenTelemetry collector, on loopback: takes OTLP/gRPC trace exports
    and counts them. Without one, daprd retries each export against a dead address and
    its shutdown waits on the last flush."""

    def __init__(self) -> None:
        self.exports = 0
        self._server = grpc.server(ThreadPoolExecutor(2))
        self._server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "opentelemetry.proto.collector.trace.v1.TraceService",
                    {"Export": grpc.unary_unary_rpc_method_handler(self._export)},
                ),
            )
        )
        self.address = f"{LOOPBACK}:{self._server.add_insecure_port(f'{LOOPBACK}:0')}"
        self._server.start()

    def _export(self, request: bytes, context: object) -> bytes:
        self.exports += 1
        return b""  # an empty ExportTraceServiceResponse: all accepted

    def stop(self) -> None:
        self._server.stop(grace=None)


# Helm values of the Dapr chart -> (control-plane service, its flag).
_HELM_VALUES = {
    "dapr_placement.disseminateTimeout": ("placement", "--disseminate-timeout"),
    "dapr_placement.keepAliveTime": ("placement", "--keepalive-time"),
    "dapr_placement.keepAliveTimeout": ("placement", "--keepalive-timeout"),
}


# Helm values of the Dapr chart for the sidecar injector: the sidecar container's
# securityContext, which a local process has no use for (tests/test_deploy.py judges the
# pods with them, through Dapr's own injector code).
INJECTOR_VALUES = {"dapr_sidecar_injector.sidecarDropALLCapabilities"}


def documented_helm_values(docs: Path = PROJECT_ROOT / "docs" / "deploy.md") -> dict[str, str]:
    """The `--set name=value` of the `helm upgrade --install dapr` command the docs give."""
    text = docs.read_text().replace("\\\n", " ")
    [command] = [line for line in text.splitlines() if "helm upgrade --install dapr " in line]
    words = shlex.split(command)
    values = dict(words[i + 1].split("=", 1) for i, w in enumerate(words) if w == "--set")
    if unknown := set(values) - set(_HELM_VALUES) - INJECTOR_VALUES:
        raise Untranslatable(f"Helm values {sorted(unknown)} not understood")
    return values


class ControlPlane:
    """Sentry (the CA, mTLS on), placement and scheduler, as the Helm chart runs them
    with the given chart values."""

    def __init__(
        self,
        bin_dir: Path,
        folder: Path,
        mtls: bool = True,
        helm_values: Mapping[str, str] | None = None,
    ) -> None:
        self.bin_dir, self.folder, self.mtls = bin_dir, folder, mtls
        self.helm_values = documented_helm_values() if helm_values is None else helm_values
        self.sentry_port, self.placement_port = free_port(), free_port()
        self.scheduler_port = free_port()
        self.processes: list[Process] = []
        self.trust_anchors = ""

    def trust_env(self) -> dict[str, str]:
        return {"DAPR_TRUST_ANCHORS": self.trust_anchors} if self.mtls else {}

    def daprd_flags(self) -> list[str]:
        flags = [
            "--placement-host-address",
            f"{LOOPBACK}:{self.placement_port}",
            "--scheduler-host-address",
            f"{LOOPBACK}:{self.scheduler_port}",
        ]
        if self.mtls:
            flags += [
                "--enable-mtls",
                "--sentry-address",
                f"{LOOPBACK}:{self.sentry_port}",
                "--control-plane-trust-domain",
                CONTROL_PLANE_TRUST_DOMAIN,
                "--control-plane-namespace",
                CONTROL_PLANE_NAMESPACE,
            ]
        return flags

    def _values(self, service: str) -> list[str]:
        return [
            part
            for name, value in self.helm_values.items()
            if name in _HELM_VALUES and _HELM_VALUES[name][0] == service
            for part in (_HELM_VALUES[name][1], value)
        ]

    def _tls(self) -> list[str]:
        if not self.mtls:
            return []
        return [
            "--tls-enabled",
            "--trust-anchors-file",
            str(self.folder / "ca" / "ca.crt"),
            "--sentry-address",
            f"{LOOPBACK}:{self.sentry_port}",
            "--trust-domain",
            CONTROL_PLANE_TRUST_DOMAIN,
        ]

    def start(self, timeout: float = 60) -> None:
        logs, env = (
            self.folder / "logs",
            {"NAMESPACE": CONTROL_PLANE_NAMESPACE, "DAPR_HOST_IP": LOOPBACK},
        )
        if self.mtls:
            (self.folder / "ca").mkdir(parents=True, exist_ok=True)
            config = self.folder / "daprsystem.yaml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "apiVersion": "dapr.io/v1alpha1",
                        "kind": "Configuration",
                        "metadata": {"name": "daprsystem"},
                        "spec": {
                            "mtls": {
                                "enabled": True,
                                "workloadCertTTL": "24h",
                                "allowedClockSkew": "15m",
                            }
                        },
                    }
                )
            )
            health = free_port()
            sentry = Process(
                "sentry",
                [
                    str(self.bin_dir / "sentry"),
                    "--issuer-credentials",
                    str(self.folder / "ca"),
                    "--trust-domain",
                    CONTROL_PLANE_TRUST_DOMAIN,
                    "--config",
                    str(config),
                    "--port",
                    str(self.sentry_port),
                    "--listen-address",
                    LOOPBACK,
                    "--healthz-port",
                    str(health),
                    "--healthz-listen-address",
                    LOOPBACK,
                    "--metrics-port",
                    str(free_port()),
                    "--metrics-listen-address",
                    LOOPBACK,
                ],
                logs,
                env=env,
            )
            self.processes.append(sentry)
            sentry.wait_http_ok(f"http://{LOOPBACK}:{health}/healthz", timeout)
            self.trust_anchors = (self.folder / "ca" / "ca.crt").read_text()
        placement_health, scheduler_health = free_port(), free_port()
        self.processes.append(
            Process(
                "placement",
                [
                    str(self.bin_dir / "placement"),
                    "--id",
                    "dapr-placement-0",
                    "--port",
                    str(self.placement_port),
                    "--listen-address",
                    LOOPBACK,
                    "--initial-cluster",
                    f"dapr-placement-0={LOOPBACK}:{free_port()}",
                    "--healthz-port",
                    str(placement_health),
                    "--metrics-port",
                    str(free_port()),
                    *self._values("placement"),
                    *self._tls(),
                ],
                logs,
                env=env,
            )
        )
        self.processes.append(
            Process(
                "scheduler",
                [
                    str(self.bin_dir / "scheduler"),
                    "--id",
                    "dapr-scheduler-server-0",
                    "--port",
                    str(self.scheduler_port),
                    "--listen-address",
                    LOOPBACK,
                    "--override-broadcast-host-port",
                    f"{LOOPBACK}:{self.scheduler_port}",
                    "--etcd-data-dir",
                    str(self.folder / "scheduler"),
                    "--etcd-client-port",
                    str(free_port()),
                    "--etcd-initial-cluster",
                    f"dapr-scheduler-server-0=http://{LOOPBACK}:{free_port()}",
                    "--healthz-port",
                    str(scheduler_health),
                    "--metrics-port",
                    str(free_port()),
                    *self._tls(),
                ],
                logs,
                env=env,
            )
        )
        self.processes[-2].wait_http_ok(f"http://{LOOPBACK}:{placement_health}/healthz", timeout)
        self.processes[-1].wait_http_ok(f"http://{LOOPBACK}:{scheduler_health}/healthz", timeout)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def start_pods(pods: list[Pod], bin_dir: Path, logs: Path, timeout: float = 90) -> None:
    """Starts every pod at once, as a rollout does: each daprd first (the SDK's actor
    runtime waits for it), then its app; returns when all say they are healthy."""
    for pod in pods:
        pod.processes = [
            Process(
                f"{pod.name}-daprd",
                [str(bin_dir / "daprd"), *pod.daprd_flags],
                logs,
                env=pod.daprd_env,
            ),
            Process(pod.name, pod.app_argv, logs, env=pod.app_env),
        ]
    for pod in pods:
        daprd, app = pod.processes
        app.wait_http_ok(f"{pod.url}/health", timeout)
        daprd.wait_http_ok(f"{pod.dapr_url}/v1.0/healthz", timeout)


def stop_pod(pod: Pod) -> None:
    for process in pod.processes:
        process.stop()


def terminate_pod(pod: Pod) -> float:
    """What the kubelet does to a pod that goes: SIGTERM to every container at once, and
    SIGKILL to those still running after terminationGracePeriodSeconds. Returns how long
    the pod took to go."""
    began = time.monotonic()
    for process in pod.processes:
        process.terminate()
    for process in pod.processes:
        process.reap(pod.grace - (time.monotonic() - began))
    return time.monotonic() - began


# daprd's own ports, which containers each have to themselves: on one machine every
# sidecar needs its own (the flag, and the value daprd takes without it).
_DAPRD_PORTS = {
    "--dapr-http-port": 3500,
    "--dapr-grpc-port": 50001,
    "--dapr-internal-grpc-port": 50002,
    "--metrics-port": 9090,
}


CONTAINER_ONLY = {"user", "read_only", "cap_drop", "security_opt", "mem_limit"}


@dataclass
class Compose:
    """docker-compose.yml's services (those of the given profiles) as local processes,
    started in dependency order. A service with `network_mode: service:<app>` shares
    the app's loopback, so they share one port map."""

    document: dict[str, Any]
    profiles: set[str]
    bin_dir: Path
    folder: Path
    image: Image = field(default_factory=Image.of)
    # The shell's variables that `${NAME:-default}` in the file reads (none by default).
    variables: Mapping[str, str] = field(default_factory=dict)

    def services(self) -> dict[str, dict[str, Any]]:
        chosen = {
            name: s
            for name, s in self.document["services"].items()
            if not s.get("profiles") or self.profiles & set(s["profiles"])
        }
        ordered: dict[str, dict[str, Any]] = {}

        def visit(name: str) -> None:
            if name not in ordered:
                for dependency in chosen[name].get("depends_on", []):
                    visit(dependency)
                ordered[name] = chosen[name]

        for name in chosen:
            visit(name)
        return ordered

    def plan(self) -> list[tuple[str, list[str], dict[str, str], dict[int, int]]]:
        """(name, argv, env, ports) per service, in start order; ports maps what the
        file says to this machine's ports."""
        services = self.services()
        ports: dict[str, dict[int, int]] = {}  # per network namespace (an app service)
        hosts: dict[str, str] = {}
        for name, service in services.items():
            _only(
                service,
                {
                    "image",
                    "build",
                    "command",
                    "environment",
                    "volumes",
                    "ports",
                    "profiles",
                    "depends_on",
                    "network_mode",
                    "restart",
                    # What the container engine enforces (uid, read-only root, no
                    # capability, memory): tests/test_containers.py runs them; a local
                    # process cannot.
                    *CONTAINER_ONLY,
                },
                name,
            )
            netns = service.get("network_mode", "").removeprefix("service:") or name
            ports.setdefault(netns, {})
        planned = []
        for name, service in services.items():
            netns = service.get("network_mode", "").removeprefix("service:") or name
            mapped = ports[netns]
            env = {
                k: self._interpolate(str(v)) for k, v in (service.get("environment") or {}).items()
            }
            image = self._interpolate(service["image"])
            if service.get("build") == ".":
                argv, env = self._app(env, mapped)
            elif image.startswith("daprio/daprd"):
                argv = self._daprd(service, mapped)
                env["DAPR_HOST_IP"] = LOOPBACK
            elif image.startswith("daprio/"):
                argv = self._control_plane(service, mapped)
            elif image.startswith("redis:"):
                argv = [
                    service["command"][0],
                    *service["command"][1:],
                    "--port",
                    str(mapped.setdefault(6379, free_port())),
                    "--bind",
                    LOOPBACK,
                    "--dir",
                    str(self._data(name)),
                    "--save",
                    "",
                ]
            else:
                raise Untranslatable(f"{name}: image {image} not understood")
            for port in list(mapped):
                hosts[f"{netns}:{port}"] = f"{LOOPBACK}:{mapped[port]}"
            planned.append((name, argv, env, mapped))
        # Names of other services (redis:6379, placement:50005) become their ports here.
        resolved = []
        for name, argv, env, mapped in planned:
            argv = [_replace_all(a, hosts) for a in argv]
            env = {k: _replace_all(v, hosts) for k, v in env.items()}
            resolved.append((name, argv, env, mapped))
        return resolved

    def _interpolate(self, value: str) -> str:
        """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?message}`."""

        def one(match: re.Match[str]) -> str:
            name, kind, rest = match.group(1), match.group(2), match.group(3) or ""
            found = self.variables.get(name) or None
            if kind == ":?" and found is None:
                raise Untranslatable(f"compose refuses to start: {name}: {rest}")
            return found if found is not None else (rest if kind == ":-" else "")

        return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)

    def _data(self, name: str) -> Path:
        path = self.folder / "volumes" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _app(self, env: dict[str, str], mapped: dict[int, int]) -> tuple[list[str], dict]:
        port = mapped.setdefault(8000, free_port())
        env = {**self.image.env, **env}
        for variable in ("DAPR_HTTP_PORT", "DAPR_GRPC_PORT"):
            env[variable] = str(mapped.setdefault(int(env[variable]), free_port()))
        return self.image.command(port), env

    def _daprd(self, service: dict[str, Any], mapped: dict[int, int]) -> list[str]:
        argv = list(service["command"])
        if argv[0] != "./daprd":
            raise Untranslatable(f"daprd started as {argv[0]}")
        volumes = dict(v.rsplit(":", 1)[0].split(":", 1)[::-1] for v in service["volumes"])
        args = [str(self.bin_dir / "daprd")]
        for arg in argv[1:]:
            args.append(
                str(PROJECT_ROOT / volumes[arg].removeprefix("./")) if arg in volumes else arg
            )
        args[args.index("--app-port") + 1] = str(mapped[int(args[args.index("--app-port") + 1])])
        for flag, default in _DAPRD_PORTS.items():
            if flag in args:
                raise Untranslatable(f"daprd's {flag} is set: map it like the defaults")
            args += [flag, str(mapped.setdefault(default, free_port()))]
        return [
            *args,
            "--app-channel-address",
            LOOPBACK,
            "--dapr-listen-addresses",
            LOOPBACK,
            "--dapr-internal-grpc-listen-address",
            LOOPBACK,
            "--metrics-listen-address",
            LOOPBACK,
        ]

    def _control_plane(self, service: dict[str, Any], mapped: dict[int, int]) -> list[str]:
        argv = list(service["command"])
        binary = argv[0].removeprefix("./")
        if binary not in ("placement", "scheduler"):
            raise Untranslatable(f"{binary} not understood")
        args = [str(self.bin_dir / binary)]
        for flag, value in zip(argv[1::2], argv[2::2], strict=True):
            if flag == "--port":
                value = str(mapped.setdefault(int(value), free_port()))
            elif flag == "--etcd-data-dir":
                value = str(self._data(binary))
            elif (binary, flag) not in _CONTROL_PLANE_FLAGS_AS_WRITTEN:
                raise Untranslatable(f"{binary} {flag} not understood")
            args += [flag, value]
        # Their other ports (health 8080, metrics 9090, raft and etcd) clash on one
        # machine: each gets its own.
        args += [
            "--listen-address",
            LOOPBACK,
            "--metrics-port",
            str(free_port()),
            "--healthz-port",
            str(mapped.setdefault(8080, free_port())),
        ]
        if binary == "placement":
            args += [
                "--initial-cluster",
                f"dapr-placement-0={LOOPBACK}:{free_port()}",
                "--id",
                "dapr-placement-0",
            ]
        else:
            args += [
                "--etcd-client-port",
                str(free_port()),
                "--id",
                "dapr-scheduler-server-0",
                "--etcd-initial-cluster",
                f"dapr-scheduler-server-0=http://{LOOPBACK}:{free_port()}",
                "--override-broadcast-host-port",
                f"{LOOPBACK}:{mapped[50006]}",
            ]
        return args


# Flags of the compose file's control plane that mean the same on one machine.
_CONTROL_PLANE_FLAGS_AS_WRITTEN = {
    ("placement", "--keepalive-time"),
    ("placement", "--keepalive-timeout"),
}


def _replace_all(value: str, hosts: Mapping[str, str]) -> str:
    for name, stand_in in hosts.items():
        value = value.replace(name, stand_in)
    return value


@dataclass
class _RunningApp:
    url: str


class MultiAppRun:
    """dapr.yaml as `dapr run -f .` starts it: placement and scheduler (which `dapr init`
    would have left running; here on ports of their own), then per app its daprd with
    the flags the CLI derives from the file, and the app's command in its folder."""

    _APP_KEYS = {
        "appID",
        "appDirPath",
        "appPort",
        "appProtocol",
        "appHealthCheckPath",
        "enableAppHealthCheck",
        "appHealthProbeInterval",
        "appHealthProbeTimeout",
        "appHealthThreshold",
        "command",
        "env",
    }
    _HEALTH_KEYS = {
        "appHealthProbeInterval": "--app-health-probe-interval",
        "appHealthProbeTimeout": "--app-health-probe-timeout",
        "appHealthThreshold": "--app-health-threshold",
    }

    def __init__(self, document: dict[str, Any], bin_dir: Path, folder: Path) -> None:
        _only(document, {"version", "common", "apps"}, "dapr.yaml")
        _only(document["common"], {"resourcesPath", "configFilePath", "env"}, "common")
        self.document, self.bin_dir, self.folder = document, bin_dir, folder
        self.control_plane = ControlPlane(bin_dir, folder, mtls=False)
        self.processes: list[Process] = []
        self.apps: list[_RunningApp] = []

    def __enter__(self) -> MultiAppRun:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        common, logs = self.document["common"], self.folder / "logs"
        self.control_plane.start()
        for app in self.document["apps"]:
            _only(app, self._APP_KEYS, app.get("appID", "an app"))
            cwd = (PROJECT_ROOT / app["appDirPath"]).resolve()
            port, http_port, grpc_port = free_port(), free_port(), free_port()
            env = {
                **{k: str(v) for k, v in common.get("env", {}).items()},
                **{k: str(v) for k, v in app.get("env", {}).items()},
                "APP_ID": app["appID"],
                "APP_PORT": str(port),
                "DAPR_HOST_IP": LOOPBACK,
                "DAPR_HTTP_PORT": str(http_port),
                "DAPR_GRPC_PORT": str(grpc_port),
            }
            flags = [
                "--app-id",
                app["appID"],
                "--app-port",
                str(port),
                "--app-protocol",
                app.get("appProtocol", "http"),
                "--resources-path",
                str(cwd / common["resourcesPath"]),
                "--config",
                str(cwd / common["configFilePath"]),
                "--dapr-http-port",
                str(http_port),
                "--dapr-grpc-port",
                str(grpc_port),
                "--dapr-internal-grpc-port",
                str(free_port()),
                "--metrics-port",
                str(free_port()),
                "--app-channel-address",
                LOOPBACK,
                "--dapr-listen-addresses",
                LOOPBACK,
                *self.control_plane.daprd_flags(),
            ]
            if app.get("enableAppHealthCheck") or app.get("appHealthCheckPath"):
                flags += [
                    "--enable-app-health-check",
                    "--app-health-check-path",
                    app.get("appHealthCheckPath", "/healthz"),
                    *(
                        arg
                        for key, flag in self._HEALTH_KEYS.items()
                        if key in app
                        for arg in (flag, str(app[key]))
                    ),
                ]
            command = [str(part) for part in app["command"]]
            command = [
                sys.executable if part in ("python", "python3") else part for part in command
            ]
            command[command.index("--port") + 1] = str(port)
            # Relative paths in the environment (the SQLite file) are the sidecar's, from
            # the app's folder: here from the rehearsal's own, so the project's state is
            # left alone, with what a fresh clone has of their folders.
            sidecar_cwd = self.folder / "app-folder"
            for value in env.values():
                if value.startswith(".") and "/" in value:
                    parent = Path(value).parent
                    if not _tracked(cwd / parent):
                        raise Untranslatable(f"{parent}/ is not in a fresh clone: {value}")
                    (sidecar_cwd / parent).mkdir(parents=True, exist_ok=True)
            daprd = Process(
                f"{app['appID']}-daprd",
                [str(self.bin_dir / "daprd"), *flags],
                logs,
                env=env,
                cwd=sidecar_cwd,
            )
            process = Process(app["appID"], command, logs, env=env, cwd=cwd)
            self.processes += [daprd, process]
            url = f"http://{LOOPBACK}:{port}"
            process.wait_http_ok(f"{url}{app.get('appHealthCheckPath', '/health')}", 60)
            daprd.wait_http_ok(f"http://{LOOPBACK}:{http_port}/v1.0/healthz", 60)
            self.apps.append(_RunningApp(url))

    def __exit__(self, *_: object) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.control_plane.stop()


def _tracked(folder: Path) -> bool:
    """Whether git tracks anything in the folder (so that a fresh clone has it)."""
    listed = subprocess.run(
        ["git", "ls-files", "--", str(folder)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return bool(listed.stdout.strip())
