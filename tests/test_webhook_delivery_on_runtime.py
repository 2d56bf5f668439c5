"""The webhook deliverer on the real runtime (Redis, the gateway and the actor host
apart): a delivery that can never be made goes to the dead-letter topic at once, a
destination that does not answer holds up no other destination's deliveries, and a
delivery of an end user's thread carries the end user with an assertion the receiver
verifies against the gateway's published keys."""

from __future__ import annotations

import base64
import json
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import jwt
import pytest

from actors.engine.events import ThreadEvent, WebhookDelivery
from actors.engine.run import ActingFor
from tests.conftest import assertion_signing_key, make_stack_config, wait_for
from tests.dapr_peers import PeerApp, local_secret_store
from tests.loopback import LoopbackServer
from threadhost.processes import Process, free_port
from threadhost.runtime import PROJECT_ROOT
from threadhost.stack import Stack

KEY = "whsec_" + base64.b64encode(b"another test key of 32 bytes!!!!").decode()


class SilentServer(LoopbackServer):
    """Accepts connections and never answers: a webhook destination that hangs."""

    def __init__(self) -> None:
        self._held: list[socket.socket] = []
        super().__init__()

    def accepted(self, connection: socket.socket) -> None:
        self._held.append(connection)

    def stop(self) -> None:
        super().stop()
        for held in self._held:
            held.close()


@dataclass
class Deliveries:
    stack: Stack
    receiver_port: int
    dead: PeerApp

    def send(
        self, url: str, secret: str = "hook-secret", acting_for: ActingFor | None = None
    ) -> str:
        """Publishes a delivery as the host does; returns its event's id."""
        event_id = f"run_{uuid.uuid4().hex}.0"
        event = ThreadEvent(
            id=event_id,
            source="/threadhost/threads/th_1",
            type="threadhost.run.created",
            subject="th_1/run_1",
            time=datetime.now(UTC),
            data={"version": 1},
        )
        delivery = WebhookDelivery(
            url=url,
            agent="notifier",
            secret=secret,
            key="signing-key",
            event=event,
            acting_for=acting_for,
        )
        sidecar = self.stack.apps[0].dapr_url
        answer = httpx.post(
            f"{sidecar}/v1.0/publish/threadevents/thread-webhooks",
            content=delivery.model_dump_json(),
            timeout=10,
            headers={"content-type": "application/json"},
        )
        assert answer.status_code == 204, answer.text
        return event_id

    def seen(self) -> list[dict]:
        return httpx.get(f"http://127.0.0.1:{self.receiver_port}/seen", timeout=10).json()

    def taken(self) -> list[str]:
        return [a["id"] for a in self.seen() if a["taken"] and a["valid"]]

    def dead_letters(self) -> list[str]:
        return [
            s["event"]["data"]["event"]["id"]
            for s in httpx.get(f"{self.dead.url}/seen", timeout=10).json()
        ]


@pytest.fixture(scope="module")
def deliveries(
    dapr_bin: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deliveries]:
    from tests.conftest import running_redis

    folder = tmp_path_factory.mktemp("deliveries")
    resources = folder / "resources"
    resources.mkdir()
    local_secret_store(
        resources,
        {
            "hook-secret": {"signing-key": KEY},
            "broken-secret": {"signing-key": "whsec_!!not base64!!"},
        },
    )
    with running_redis(folder) as redis:
        config = make_stack_config(
            dapr_bin,
            folder,
            uuid.uuid4().hex[:10],
            profile="redis",
            env={
                "THREADHOST_SECRET_STORE": "localsecrets",
                "THREADHOST_REDIS_HOST": redis,
                "THREADHOST_WEBHOOK_TIMEOUT_SECONDS": "30",
                "THREADHOST_ASSERTION_SIGNING_KEY": assertion_signing_key(),
            },
        )
        config.extra_resources.append(resources)
        port = free_port()
        receiver = Process(
            "webhook-receiver",
            ["python", "-m", "tests.fakes.webhook_receiver", str(port), KEY, "0"],
            folder / "logs",
            cwd=PROJECT_ROOT,
        )
        dead_resources = folder / "dead-resources"
        dead_resources.mkdir()
        (dead_resources / "threadevents.yaml").write_text(
            json.dumps(
                {
                    "apiVersion": "dapr.io/v1alpha1",
                    "kind": "Component",
                    "metadata": {"name": "threadevents"},
                    "spec": {
                        "type": "pubsub.redis",
                        "version": "v1",
                        "metadata": [{"name": "redisHost", "value": redis}],
                    },
                }
            )
        )
        dead = None
        try:
            receiver.wait_http_ok(f"http://127.0.0.1:{port}/health", 30)
            with Stack(config, split=True) as stack:
                dead = PeerApp(
                    f"deadletters-{uuid.uuid4().hex[:6]}",
                    "tests.fakes.event_subscriber",
                    "{port}",
                    "thread-webhooks-dead",
                    bin_dir=dapr_bin,
                    logs=folder / "logs",
                    daprd_flags=["--resources-path", str(dead_resources)],
                )
                yield Deliveries(stack, port, dead)
        finally:
            if dead is not None:
                dead.stop()
            receiver.stop()


def test_a_delivery_that_can_never_be_made_is_dead_lettered_at_once(deliveries) -> None:
    started = time.monotonic()
    hopeless = [
        deliveries.send("https://crm.example.com/x\ty"),
        deliveries.send("https://crm.example.com@169.254.169.254/"),
        deliveries.send(
            f"http://127.0.0.1:{deliveries.receiver_port}/hook", secret="broken-secret"
        ),
    ]
    fine = deliveries.send(f"http://127.0.0.1:{deliveries.receiver_port}/hook")
    wait_for(
        lambda: set(hopeless) <= set(deliveries.dead_letters()),
        20,
        "the hopeless deliveries on the dead-letter topic",
    )
    assert time.monotonic() - started < 15  # not after ten minutes of retries
    wait_for(lambda: fine in deliveries.taken(), 20, "the good delivery to be taken")
    assert fine not in deliveries.dead_letters()


def test_a_destination_that_hangs_holds_up_no_other(deliveries) -> None:
    silent = SilentServer()
    try:
        for _ in range(24):  # more than the subscriber's workers
            deliveries.send(f"http://127.0.0.1:{silent.port}/hook")
        started = time.monotonic()
        fine = deliveries.send(f"http://127.0.0.1:{deliveries.receiver_port}/hook")
        wait_for(lambda: fine in deliveries.taken(), 20, "the other destination's delivery")
        # Far less than one attempt at the silent destination (30 s).
        assert time.monotonic() - started < 10
    finally:
        silent.stop()


def test_an_end_users_delivery_names_them_with_an_assertion_the_receiver_verifies(
    deliveries,
) -> None:
    """A service's end user's thread: the delivery carries the end user and an assertion
    for this URL, which verifies against the gateway's /.well-known/jwks.json (as
    docs/tools.md tells a receiver to), beside the Standard Webhooks signature."""
    url = f"http://127.0.0.1:{deliveries.receiver_port}/hook"
    event_id = deliveries.send(url, acting_for=ActingFor(service="support-portal", user="c-7"))
    wait_for(lambda: event_id in deliveries.taken(), 60, "the end user's delivery")
    [attempt] = [a for a in deliveries.seen() if a["id"] == event_id]
    assert attempt["end_user"] == "c-7" and attempt["valid"]
    keys = jwt.PyJWKClient(f"{deliveries.stack.api.url}/.well-known/jwks.json")
    token = attempt["assertion"]
    claims = jwt.decode(
        token,
        keys.get_signing_key_from_jwt(token).key,
        algorithms=["ES256"],
        audience=url,
        issuer="threadhost",
    )
    assert (claims["sub"], claims["azp"], claims["thread_id"]) == ("c-7", "support-portal", "th_1")
    # A delivery of a thread run for nobody names nobody.
    other = deliveries.send(url)
    wait_for(lambda: other in deliveries.taken(), 60, "the other delivery")
    assert {a["end_user"] for a in deliveries.seen() if a["id"] == other} == {None}
