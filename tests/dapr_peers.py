"""Other teams' apps beside threadhost, each with its own daprd: services that serve tools
and MCP servers that run as Dapr apps (tests/fakes)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from threadhost.processes import Process, free_port
from threadhost.runtime import PROJECT_ROOT
from threadhost.stack import Stack

LOOPBACK = "127.0.0.1"


class PeerApp:
    """`python -m <module> ...` on a free port (the `{port}` in its arguments; its
    sidecar's HTTP port is `{dapr_http_port}`), and its daprd with the given app-id;
    `daprd_flags` add a control plane or a Configuration."""

    def __init__(
        self,
        app_id: str,
        module: str,
        *args: str,
        bin_dir: Path,
        logs: Path,
        daprd_flags: list[str] | None = None,
        env: dict[str, str] | None = None,
        health: str = "/health",
    ) -> None:
        self.app_id, self.port, self.http_port = app_id, free_port(), free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        argv = [
            a.replace("{port}", str(self.port)).replace("{dapr_http_port}", str(self.http_port))
            for a in args
        ]
        self.app = Process(app_id, [sys.executable, "-m", module, *argv], logs, cwd=PROJECT_ROOT)
        self.sidecar = Process(
            f"{app_id}-daprd",
            [
                str(bin_dir / "daprd"),
                "--app-id",
                app_id,
                "--mode",
                "standalone",
                "--app-port",
                str(self.port),
                "--app-channel-address",
                LOOPBACK,
                "--dapr-listen-addresses",
                LOOPBACK,
                "--dapr-http-port",
                str(self.http_port),
                "--dapr-grpc-port",
                str(free_port()),
                "--dapr-internal-grpc-port",
                str(free_port()),
                "--dapr-internal-grpc-listen-address",
                LOOPBACK,
                "--metrics-port",
                str(free_port()),
                "--metrics-listen-address",
                LOOPBACK,
                *(daprd_flags or []),
                "--log-level",
                "warn",
            ],
            logs,
            env={"DAPR_HOST_IP": LOOPBACK, **(env or {})},
        )
        try:
            self.app.wait_http_ok(self.url + health, 60)
            self.sidecar.wait_http_ok(f"http://{LOOPBACK}:{self.http_port}/v1.0/healthz", 60)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.sidecar.stop()
        self.app.stop()


def local_secret_store(
    folder: Path, secrets: dict[str, dict[str, str]], name: str = "localsecrets"
) -> Path:
    """A Dapr secret store of local files in `folder` (a resources folder for a sidecar)
    holding `secrets`: name -> {key: value}."""
    (folder / "secrets.json").write_text(json.dumps(secrets))
    (folder / "store.yaml").write_text(
        json.dumps(
            {
                "apiVersion": "dapr.io/v1alpha1",
                "kind": "Component",
                "metadata": {"name": name},
                "spec": {
                    "type": "secretstores.local.file",
                    "version": "v1",
                    "metadata": [
                        {"name": "secretsFile", "value": str(folder / "secrets.json")},
                        {"name": "multiValued", "value": "true"},
                    ],
                },
            }
        )
    )
    return folder


def caller_sidecar(stack: Stack, app_id: str, folder: Path) -> tuple[Process, str]:
    """A daprd with no app behind it, on the stack's control plane: how another service
    calls threadhost. Returns it and the URL of the gateway's methods through it."""
    port = free_port()
    sidecar = Process(
        f"{app_id}-daprd",
        [
            str(stack.config.bin_dir / "daprd"),
            *("--app-id", app_id, "--mode", "standalone"),
            *("--dapr-listen-addresses", LOOPBACK, "--dapr-http-port", str(port)),
            *("--dapr-grpc-port", str(free_port()), "--dapr-internal-grpc-port", str(free_port())),
            *("--metrics-port", str(free_port()), "--metrics-listen-address", LOOPBACK),
            *("--placement-host-address", stack.control_plane.placement_address),
            *("--scheduler-host-address", stack.control_plane.scheduler_address),
            *("--log-level", "warn"),
        ],
        folder / "logs",
        env={"DAPR_HOST_IP": LOOPBACK},
    )
    sidecar.wait_http_ok(f"http://{LOOPBACK}:{port}/v1.0/healthz/outbound", 60)
    return sidecar, f"http://{LOOPBACK}:{port}/v1.0/invoke/{stack.config.gateway_app_id}/method"
