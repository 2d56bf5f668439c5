"""docker-compose.yml (both profiles) and dapr.yaml run as written, as local processes with
the real binaries (tests/rehearsal.py says what had to be translated), and a conversation
through each."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import Api
from tests.rehearsal import LOOPBACK, Compose, MultiAppRun, Untranslatable
from threadhost.processes import Process, StartupError
from threadhost.runtime import PROJECT_ROOT, dapr_bin_dir


def _healthy(name: str, process: Process, ports: dict[int, int], argv: list[str]) -> None:
    if "redis-server" in argv[0]:
        from tests.conftest import _wait_redis

        _wait_redis(process, ports[6379])
    elif argv[0].endswith(("placement", "scheduler")):
        process.wait_http_ok(f"http://{LOOPBACK}:{ports[8080]}/healthz", 60)
    elif argv[0].endswith("daprd"):
        process.wait_http_ok(f"http://{LOOPBACK}:{ports[3500]}/v1.0/healthz", 60)
    else:
        process.wait_http_ok(f"http://{LOOPBACK}:{ports[8000]}/health", 60)


@pytest.mark.parametrize("profiles", [set(), {"two-hosts"}], ids=["default", "two-hosts"])
def test_compose_starts_as_written_and_holds_a_conversation(profiles, tmp_path: Path) -> None:
    compose = Compose(
        yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text()),
        profiles,
        dapr_bin_dir(),
        tmp_path,
    )
    plan = compose.plan()
    started: list[Process] = []
    began = time.monotonic()
    try:
        for name, argv, env, ports in plan:
            process = Process(name, argv, tmp_path / "logs", env=env, cwd=tmp_path)
            started.append(process)
            # depends_on only orders the start: an app may come up before its daprd.
            if not argv[0].endswith("python3") and "uvicorn" not in argv:
                _healthy(name, process, ports, argv)
        for (name, argv, _, ports), process in zip(plan, started, strict=True):
            _healthy(name, process, ports, argv)
        print(
            f"compose {sorted(profiles) or 'default'} healthy in {time.monotonic() - began:.1f} s"
        )
        gateway = next(ports for name, _, _, ports in plan if name == "gateway")
        api = Api(f"http://{LOOPBACK}:{gateway[8000]}")
        thread = api.create_thread(agent="support")
        reply = api.say(thread, "Where is my order 1001?")
        assert reply["run"]["status"] == "completed"
        assert api.run(thread, reply["run"]["run_id"])["status"] == "completed"
        hosts = [n for n, *_ in plan if n.startswith("threads") and not n.endswith("daprd")]
        assert len(hosts) == (2 if profiles else 1)
    finally:
        for process in reversed(started):
            process.stop()


def test_a_compose_field_the_rehearsal_does_not_know_fails_loudly(tmp_path: Path) -> None:
    document = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    document["services"]["gateway"]["healthcheck"] = {"test": ["CMD", "true"]}
    with pytest.raises(Untranslatable, match="healthcheck"):
        Compose(document, set(), dapr_bin_dir(), tmp_path).plan()


def test_dapr_multi_app_run_starts_as_written_and_holds_a_conversation(tmp_path: Path) -> None:
    document = yaml.safe_load((PROJECT_ROOT / "dapr.yaml").read_text())
    # daprd stops sending work to an app that no longer answers its health path.
    assert all(app.get("appHealthCheckPath") == "/health" for app in document["apps"])
    run = MultiAppRun(document, dapr_bin_dir(), tmp_path)
    with run:
        api = Api(run.apps[0].url)
        thread = api.create_thread(agent="support")
        assert api.say(thread, "Where is my order 1001?")["run"]["status"] == "completed"


def test_compose_with_jwt_but_no_settings_refuses_to_start_naming_them(tmp_path: Path) -> None:
    compose = Compose(
        yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text()),
        set(),
        dapr_bin_dir(),
        tmp_path,
        variables={"THREADHOST_AUTH_MODE": "jwt"},
    )
    [(name, argv, env, _)] = [p for p in compose.plan() if p[0] == "gateway"]
    gateway = Process(name, argv, tmp_path / "logs", env=env)
    try:
        with pytest.raises(StartupError, match="THREADHOST_AUTH_MODE=jwt needs"):
            gateway.wait_http_ok(f"http://{LOOPBACK}:1/health", 60)
    finally:
        gateway.stop()
