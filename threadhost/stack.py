"""A threadhost stack on one machine: placement, scheduler, and apps with their sidecars.

Every process listens on loopback on its own free ports, writes its log under the data
folder, and is stopped by pid. The launcher (`threadhost up`) and the tests both use this.
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from threadhost.processes import Process, free_port, reserve_port
from threadhost.runtime import COMPONENTS
from threadhost.scheduler_lease import take_over_leadership

LOOPBACK = "127.0.0.1"
# daprd probes its app: when the app dies beside a live sidecar, the sidecar leaves the
# actor placement after `threshold` failed probes, so the threads it held move to another
# host within about interval x threshold seconds. The timeout is far above the event
# loop's worst stall under load (docs/deploy.md), so a busy host is never dropped. The k8s
# annotations and docker-compose.yml say the same (tests/test_deploy.py).
APP_HEALTH = {
    "enable-app-health-check": "true",
    "app-health-check-path": "/health",
    "app-health-probe-interval": "1",
    "app-health-probe-timeout": "1000",
    "app-health-threshold": "2",
}
# Placement pings each daprd this often and drops one that does not answer in time, so a
# frozen host's threads move after about 3 s, not 5 s (Dapr's default, 2 s and 3 s). A
# ping is answered by daprd's gRPC transport, not by anything a busy app can hold up. The
# Helm command in docs/deploy.md and docker-compose.yml say the same (tests/test_deploy.py).
PLACEMENT_KEEPALIVE = {"keepalive-time": "1s", "keepalive-timeout": "2s"}


@dataclass
class StackConfig:
    bin_dir: Path
    data_dir: Path
    # A folder under components/: sqlite (the default), redis or postgres.
    profile: str = "sqlite"
    # THREADHOST_* settings and component variables for every app and sidecar.
    env: Mapping[str, str] = field(default_factory=dict)
    log_level: str = "warn"
    startup_timeout: float = 60.0
    # More resource folders for every sidecar (say, a secret store), beside the profile's.
    extra_resources: list[Path] = field(default_factory=list)
    # Dapr app-ids. Actor state is keyed by the actor host's, so keep it across restarts;
    # service invocation finds apps by app-id across the whole machine (mDNS), so stacks
    # that run side by side (tests beside `threadhost up`) need their own.
    actors_app_id: str = "threads"
    gateway_app_id: str = "gateway"
    # Dapr's app token, for every app and its sidecar: daprd's routes (actor calls,
    # /internal/*) then answer only daprd, as in a deployment. New for each stack.
    app_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def process_env(self) -> dict[str, str]:
        defaults = {
            "DAPR_HOST_IP": LOOPBACK,
            "THREADHOST_SQLITE_PATH": str(self.data_dir / "state.db"),
            "THREADHOST_REDIS_HOST": f"{LOOPBACK}:6379",
            "THREADHOST_REDIS_PASSWORD": "",
            "THREADHOST_POSTGRES_URL": "host=127.0.0.1 port=5432 dbname=threadhost sslmode=disable",
            # The local launcher and tests run without authentication unless told otherwise.
            "THREADHOST_AUTH_MODE": "none",
            "APP_API_TOKEN": self.app_token,
        }
        # What the user's environment says wins over these defaults; `env` over both.
        return {**defaults, **{k: os.environ[k] for k in defaults if k in os.environ}, **self.env}


class ControlPlane:
    """Dapr's placement (actor placement) and scheduler (reminders)."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.placement_port, self.scheduler_port = free_port(), free_port()
        self._processes: list[Process] = []
        self._stopped = threading.Event()
        self._leadership: threading.Thread | None = None

    @property
    def placement_address(self) -> str:
        return f"{LOOPBACK}:{self.placement_port}"

    @property
    def scheduler_address(self) -> str:
        return f"{LOOPBACK}:{self.scheduler_port}"

    def start(self) -> None:
        cfg = self.config
        self._stopped.clear()
        placement_health, scheduler_health, etcd_port = free_port(), free_port(), free_port()
        placement = self._placement(placement_health)
        self._processes.append(placement)
        scheduler = self._scheduler(scheduler_health, etcd_port)
        self._processes.append(scheduler)
        placement.wait_http_ok(f"http://{LOOPBACK}:{placement_health}/healthz", cfg.startup_timeout)
        scheduler.wait_http_ok(f"http://{LOOPBACK}:{scheduler_health}/healthz", cfg.startup_timeout)
        # After a crash it would wait 20 s for its dead predecessor's lease
        # (threadhost/scheduler_lease.py): revoked while the apps start.
        self._leadership = threading.Thread(
            target=take_over_leadership,
            name="scheduler-leadership",
            daemon=True,
            args=(
                f"http://{LOOPBACK}:{etcd_port}",
                self.scheduler_address,
                cfg.startup_timeout,
                self._stopped,
            ),
        )
        self._leadership.start()

    def _served(self, health_port: int) -> list[str]:
        """What placement and the scheduler both take: health and metrics on loopback,
        and the stack's log level."""
        return [
            "--healthz-port",
            str(health_port),
            "--healthz-listen-address",
            LOOPBACK,
            "--metrics-port",
            str(free_port()),
            "--log-level",
            self.config.log_level,
        ]

    def _placement(self, health_port: int) -> Process:
        cfg, bin_dir, logs = self.config, self.config.bin_dir, self.config.data_dir / "logs"
        return Process(
            "placement",
            [
                str(bin_dir / "placement"),
                "--id",
                "dapr-placement-0",
                "--port",
                str(self.placement_port),
                "--listen-address",
                LOOPBACK,
                "--initial-cluster",
                f"dapr-placement-0={LOOPBACK}:{free_port()}",
                *self._served(health_port),
                *(
                    part
                    for name, value in PLACEMENT_KEEPALIVE.items()
                    for part in (f"--{name}", value)
                ),
            ],
            logs,
            env=cfg.process_env(),
        )

    def _scheduler(self, health_port: int, etcd_port: int) -> Process:
        cfg, bin_dir, logs = self.config, self.config.bin_dir, self.config.data_dir / "logs"
        return Process(
            "scheduler",
            [
                str(bin_dir / "scheduler"),
                "--id",
                "dapr-scheduler-server-0",
                "--port",
                str(self.scheduler_port),
                "--listen-address",
                LOOPBACK,
                "--override-broadcast-host-port",
                self.scheduler_address,
                "--etcd-data-dir",
                str(cfg.data_dir / "scheduler"),
                "--etcd-client-port",
                str(etcd_port),
                "--etcd-initial-cluster",
                f"dapr-scheduler-server-0=http://{LOOPBACK}:{free_port()}",
                *self._served(health_port),
            ],
            logs,
            env=cfg.process_env(),
        )

    def processes(self) -> list[Process]:
        return list(self._processes)

    def stop(self) -> None:
        self._stopped.set()
        if self._leadership is not None:
            self._leadership.join()
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()


class App:
    """One threadhost app process (a role from settings) and its daprd sidecar."""

    def __init__(
        self,
        config: StackConfig,
        control_plane: ControlPlane,
        name: str,
        role: str = "embedded",
        api_port: int | None = None,
        env: Mapping[str, str] | None = None,
        listen: str = LOOPBACK,
    ) -> None:
        self.config, self.control_plane = config, control_plane
        self.listen = listen
        self.name, self.role = name, role
        self.app_id = config.gateway_app_id if role == "gateway" else config.actors_app_id
        self.app_port = reserve_port(api_port) if api_port else free_port()
        self.dapr_http_port = free_port()
        self.metrics_port = free_port()
        self.env = dict(env or {})
        # daprd names this replica's run-event consumer group after it ({podName}); the
        # app deletes the group when it stops. One per App, kept across its restarts.
        self.pod_name = f"{name}-{secrets.token_hex(3)}"
        self.app: Process | None = None
        self.sidecar: Process | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.app_port}"

    @property
    def dapr_url(self) -> str:
        return f"http://{LOOPBACK}:{self.dapr_http_port}"

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Starts the app and its sidecar, without waiting for them to be ready."""
        cfg, logs = self.config, self.config.data_dir / "logs"
        dapr_grpc_port = free_port()
        env = {
            **cfg.process_env(),
            **self.env,
            "THREADHOST_ROLE": self.role,
            "THREADHOST_INSTANCE": self.name,
            "DAPR_HTTP_PORT": str(self.dapr_http_port),
            "DAPR_GRPC_PORT": str(dapr_grpc_port),
            "POD_NAME": self.pod_name,
        }
        # The sidecar first: the SDK's actor runtime waits for it while the app starts,
        # and daprd waits for the app's port before it reads /dapr/config.
        self.sidecar = Process(
            f"{self.name}-daprd",
            self._daprd_arguments(dapr_grpc_port),
            logs,
            env=env,
            cwd=cfg.data_dir,
        )

        self.app = Process(
            self.name,
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "threadhost.app:create_app",
                "--host",
                self.listen,
                "--port",
                str(self.app_port),
                "--workers",
                "1",
                "--log-level",
                "warning",
            ],
            logs,
            env=env,
        )

    def _daprd_arguments(self, dapr_grpc_port: int) -> list[str]:
        cfg = self.config
        return [
            str(cfg.bin_dir / "daprd"),
            "--app-id",
            self.app_id,
            "--mode",
            "standalone",
            "--app-port",
            str(self.app_port),
            "--app-channel-address",
            LOOPBACK,
            "--dapr-listen-addresses",
            LOOPBACK,
            "--dapr-http-port",
            str(self.dapr_http_port),
            "--dapr-grpc-port",
            str(dapr_grpc_port),
            "--dapr-internal-grpc-port",
            str(free_port()),
            "--dapr-internal-grpc-listen-address",
            LOOPBACK,
            "--metrics-port",
            str(self.metrics_port),
            "--metrics-listen-address",
            LOOPBACK,
            "--placement-host-address",
            self.control_plane.placement_address,
            "--scheduler-host-address",
            self.control_plane.scheduler_address,
            "--resources-path",
            str(COMPONENTS / cfg.profile),
            *(arg for path in cfg.extra_resources for arg in ("--resources-path", str(path))),
            "--config",
            str(COMPONENTS / "configuration.yaml"),
            *(f"--{flag}={value}" for flag, value in APP_HEALTH.items()),
            "--log-level",
            cfg.log_level,
        ]

    def wait_ready(self) -> None:
        timeout = self.config.startup_timeout
        assert self.app is not None and self.sidecar is not None, "launch() first"
        # Checks the answer is this app's: a port taken by another server answers too.
        self.app.wait_http_ok(f"{self.url}/health", timeout, self._is_this_app)
        self.sidecar.wait_http_ok(f"{self.dapr_url}/v1.0/healthz", timeout)

    def _is_this_app(self, response: httpx.Response) -> bool:
        try:
            return response.json().get("instance") == self.name
        except ValueError:
            return False

    def processes(self) -> list[Process]:
        return [p for p in (self.app, self.sidecar) if p is not None]

    def actor_stats(self) -> dict:
        """The actor host's counters (/internal/actors), asked as its sidecar would."""
        token = {**self.config.process_env(), **self.env}["APP_API_TOKEN"]
        response = httpx.get(
            f"{self.url}/internal/actors", timeout=10, headers={"dapr-api-token": token}
        )
        response.raise_for_status()
        return response.json()

    def kill(self) -> None:
        """SIGKILLs the app and its sidecar together, as when their node dies."""
        for process in (self.sidecar, self.app):
            if process is not None:
                process.kill()

    def stop(self) -> None:
        for process in (self.sidecar, self.app):
            if process is not None:
                process.stop()


class Stack:
    """The control plane plus either one embedded app or a gateway and an actor host."""

    def __init__(
        self,
        config: StackConfig,
        split: bool = False,
        api_port: int | None = None,
        actor_hosts: int = 1,
        listen: str = LOOPBACK,
    ) -> None:
        """`listen`: the address the API app listens on (loopback unless in a container,
        whose published port reaches it from outside); everything else is loopback."""
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.control_plane = ControlPlane(config)
        if split:
            self.apps = [
                *(
                    App(
                        config, self.control_plane, "actors" + (f"-{n}" if n else ""), role="actors"
                    )
                    for n in range(actor_hosts)
                ),
                App(config, self.control_plane, "gateway", "gateway", api_port, listen=listen),
            ]
        else:
            self.apps = [
                App(config, self.control_plane, "threadhost", api_port=api_port, listen=listen)
            ]

    @property
    def api(self) -> App:
        return self.apps[-1]

    def processes(self) -> list[Process]:
        return [*self.control_plane.processes(), *(p for a in self.apps for p in a.processes())]

    def start(self) -> None:
        try:
            self.control_plane.start()
            for app in self.apps:  # together: each takes seconds to start
                app.launch()
            for app in self.apps:
                app.wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for app in reversed(self.apps):
            app.stop()
        self.control_plane.stop()

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
