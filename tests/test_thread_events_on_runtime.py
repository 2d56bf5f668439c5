"""Thread events on the runtime, split and embedded, on Redis: another team's app with its
own daprd hears a run's transitions as CloudEvents, in order; a webhook receiver that
fails twice then takes each event gets it signed, with the same id on every retry."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_AGENTS, Api, make_stack_config, wait_for
from tests.dapr_peers import PeerApp, local_secret_store
from threadhost.processes import Process, free_port
from threadhost.runtime import PROJECT_ROOT
from threadhost.stack import Stack

# A signing secret in the Standard Webhooks form: the receiver hands the same string to
# the official library.
KEY = "whsec_" + base64.b64encode(b"a test signing key of 32 bytes!!").decode()


def notifier(port: int) -> dict:
    """An agent whose threads may send their events to the receiver on `port` only."""
    return {
        "name": "notifier",
        "tools": ["query_order"],
        "approval_required": ["query_order"],
        "webhook": {"secret": "notifier-webhook", "allowed_urls": [f"http://127.0.0.1:{port}/"]},
        "script": [
            {"tool_calls": [{"name": "query_order", "arguments": {"order_id": "1001"}}]},
            "Order 1001 has shipped.",
        ],
    }


TYPES = ["threadhost.run.created", "threadhost.run.requires_action", "threadhost.run.completed"]


def _resources(folder: Path, redis: str) -> tuple[Path, Path]:
    """The host's secret store, and the subscriber's own component for the events."""
    host, crm = folder / "host-resources", folder / "crm-resources"
    host.mkdir()
    crm.mkdir()
    local_secret_store(host, {"notifier-webhook": {"signing-key": KEY}})
    # As docs/events.md tells another team: the same component name and Redis, one
    # message at a time to keep a run's events in order.
    (crm / "threadevents.yaml").write_text(
        json.dumps(
            {
                "apiVersion": "dapr.io/v1alpha1",
                "kind": "Component",
                "metadata": {"name": "threadevents"},
                "spec": {
                    "type": "pubsub.redis",
                    "version": "v1",
                    "metadata": [
                        {"name": "redisHost", "value": redis},
                        {"name": "concurrency", "value": "1"},
                    ],
                },
            }
        )
    )
    return host, crm


def _waiting_run(api: Api, port: int) -> tuple[str, dict]:
    """A notifier thread whose webhook is the receiver on `port`, and its run, which waits
    for an approval (created and requires_action are announced)."""
    made = api.http.post(
        "/v1/threads", json={"agent": "notifier", "webhook_url": f"http://127.0.0.1:{port}/hook"}
    )
    assert made.status_code == 201, made.text
    thread = made.json()["id"]
    run = api.http.post(
        f"/v1/threads/{thread}/messages", json={"content": "Where is order 1001?"}
    ).json()["run"]
    assert run["status"] == "requires_action"
    return thread, run


@pytest.mark.parametrize("shape", ["split", "embedded"])
def test_other_services_hear_a_runs_events_and_webhooks_get_them_signed(
    shape: str, dapr_bin: Path, tmp_path: Path, redis_server: str
) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    port = free_port()
    (agents / "notifier.json").write_text(json.dumps(notifier(port)))
    host_resources, crm_resources = _resources(tmp_path, redis_server)
    dirs = [*json.loads(TEST_AGENTS["THREADHOST_AGENTS_DIRS"]), str(agents)]
    config = make_stack_config(
        dapr_bin,
        tmp_path,
        uuid.uuid4().hex[:10],
        profile="redis",
        env={
            "THREADHOST_AGENTS_DIRS": json.dumps(dirs),
            "THREADHOST_SECRET_STORE": "localsecrets",
            "THREADHOST_REDIS_HOST": redis_server,
        },
    )
    config.extra_resources.append(host_resources)
    logs = tmp_path / "logs"
    receiver = Process(
        "webhook-receiver",
        ["python", "-m", "tests.fakes.webhook_receiver", str(port), KEY],
        logs,
        cwd=PROJECT_ROOT,
    )
    crm = None
    try:
        receiver.wait_http_ok(f"http://127.0.0.1:{port}/health", 30)
        with Stack(config, split=shape == "split") as stack:
            crm = PeerApp(
                "crm",
                "tests.fakes.event_subscriber",
                "{port}",
                bin_dir=dapr_bin,
                logs=logs,
                daprd_flags=["--resources-path", str(crm_resources)],
            )
            api = Api(stack.api.url)
            refused = api.http.post(
                "/v1/threads", json={"agent": "notifier", "webhook_url": "http://192.0.2.7/steal"}
            )
            assert refused.status_code == 422 and "webhook_url" in refused.json()["detail"]
            thread, waiting = _waiting_run(api, port)
            run_id, [action] = waiting["run_id"], waiting["required_action"]
            done = api.http.post(
                f"/v1/threads/{thread}/runs/{run_id}/resume",
                json={
                    "actions": [
                        {"type": "approval", "call_id": action["call_id"], "approved": True}
                    ]
                },
            ).json()
            assert done["run"]["status"] == "completed", done

            def heard() -> list[dict]:
                return [
                    s
                    for s in httpx.get(f"{crm.url}/seen").json()
                    if s["event"]["data"].get("run_id") == run_id
                ]

            events = wait_for(
                lambda: len(h := heard()) >= 3 and h,
                30,
                "the subscriber to hear the run's three transitions",
            )
            assert [e["event"]["type"] for e in events] == TYPES
            first = events[0]["event"]
            assert first["specversion"] == "1.0"
            assert first["source"] == f"/threadhost/threads/{thread}"
            assert first["subject"] == f"{thread}/{run_id}"
            assert first["dataschema"] == "urn:threadhost:thread-event:v1"
            assert [e["event"]["id"] for e in events] == [
                f"{run_id}.{e['event']['data']['seq']}" for e in events
            ]
            last = events[-1]["event"]["data"]
            assert (last["status"], last["agent"], last["owner"]) == (
                "completed",
                "notifier",
                "anonymous",
            )
            assert last["usage"]["input_tokens"] > 0

            def taken() -> list[dict] | None:
                seen = httpx.get(f"http://127.0.0.1:{port}/seen").json()
                return seen if sum(a["taken"] for a in seen) >= 3 else None

            ids = [e["event"]["id"] for e in events]
            attempts = wait_for(taken, 60, "the webhook to take every event")
            for event_id in ids:
                mine = [a for a in attempts if a["id"] == event_id]
                assert [a["attempt"] for a in mine] == [1, 2, 3], mine
                assert all(a["valid"] for a in mine), mine
                assert len({a["body"] for a in mine}) == 1  # byte for byte
                assert json.loads(mine[0]["body"])["id"] == event_id
    finally:
        if crm is not None:
            crm.stop()
        receiver.stop()


def test_webhooks_go_out_when_the_thread_events_cannot(
    dapr_bin: Path, tmp_path: Path, redis_server: str
) -> None:
    """The thread events' topic refuses the host (the component's publishingScopes allow
    it the webhooks' topic only): every webhook delivery still goes out, signed."""
    agents, resources = tmp_path / "agents", tmp_path / "resources"
    agents.mkdir()
    resources.mkdir()
    port = free_port()
    (agents / "notifier.json").write_text(json.dumps(notifier(port)))
    suffix = uuid.uuid4().hex[:10]
    local_secret_store(resources, {"notifier-webhook": {"signing-key": KEY}})
    (resources / "scoped.yaml").write_text(
        json.dumps(
            {
                "apiVersion": "dapr.io/v1alpha1",
                "kind": "Component",
                "metadata": {"name": "scopedevents"},
                "spec": {
                    "type": "pubsub.redis",
                    "version": "v1",
                    "metadata": [
                        {"name": "redisHost", "value": redis_server},
                        {"name": "publishingScopes", "value": f"threads-{suffix}=thread-webhooks"},
                    ],
                },
            }
        )
    )
    dirs = [*json.loads(TEST_AGENTS["THREADHOST_AGENTS_DIRS"]), str(agents)]
    config = make_stack_config(
        dapr_bin,
        tmp_path,
        suffix,
        profile="redis",
        env={
            "THREADHOST_AGENTS_DIRS": json.dumps(dirs),
            "THREADHOST_SECRET_STORE": "localsecrets",
            "THREADHOST_THREAD_EVENTS_PUBSUB": "scopedevents",
            "THREADHOST_REDIS_HOST": redis_server,
        },
    )
    config.extra_resources.append(resources)
    receiver = Process(
        "webhook-receiver",
        ["python", "-m", "tests.fakes.webhook_receiver", str(port), KEY, "0"],
        tmp_path / "logs",
        cwd=PROJECT_ROOT,
    )
    try:
        receiver.wait_http_ok(f"http://127.0.0.1:{port}/health", 30)
        with Stack(config, split=True) as stack:
            _waiting_run(Api(stack.api.url), port)

            def taken() -> list[dict] | None:
                seen = httpx.get(f"http://127.0.0.1:{port}/seen").json()
                return seen if len(seen) >= 2 else None

            attempts = wait_for(taken, 30, "the webhook to get the run's two events")
            assert [json.loads(a["body"])["type"] for a in attempts] == TYPES[:2]
            assert all(a["valid"] and a["taken"] for a in attempts), attempts
            # ...while the thread events' topic refused every one of them.
            wait_for(
                lambda: "thread-events of event" in stack.apps[0].app.log_tail(200),
                30,
                "the host to give up on the thread events",
            )
    finally:
        receiver.stop()
