"""What a hostile caller (or a prompt-injected model) sends, through every door, on the real
runtime with the gateway and the actor host apart and another team's app beside them in
the mesh.

An id is only an id: every field and path that names a thread, run, follow-up or call, on
every door (/v1/threads, the OpenAI doors, the MCP door), is refused unless it is one,
before anything reaches a sidecar; after every hostile id, both sidecars still answer and
the other app has received nothing. A caller cannot pick a model its agent does not allow,
a schedule that comes more than once a minute, or a webhook outside its agent's URLs; a
token header of any bytes is refused, not a dropped connection."""

from __future__ import annotations

import asyncio
import http.client
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest

from tests.conftest import Api, make_stack_config, stored_rows
from tests.dapr_peers import PeerApp
from threadhost.stack import Stack


@dataclass
class Mesh:
    stack: Stack
    api: Api
    peer: PeerApp


@pytest.fixture(scope="module")
def mesh(dapr_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    folder = tmp_path_factory.mktemp("ids")
    suffix = uuid.uuid4().hex[:10]
    config = make_stack_config(dapr_bin, folder, suffix)
    with Stack(config, split=True) as stack:
        peer = PeerApp(
            f"ledger-{suffix}",
            "tests.fakes.tool_service",
            "{port}",
            bin_dir=dapr_bin,
            logs=config.data_dir / "logs",
        )
        try:
            yield Mesh(stack, Api(stack.api.url), peer)
        finally:
            peer.stop()


def hostile_ids(peer: str) -> list[str]:
    """Ids that try to leave their path segment: up to the sidecar's other APIs (its
    shutdown, another app's methods, a topic), in plain and percent-encoded forms."""
    return [
        "../../shutdown?",
        "../../../v1.0/shutdown#",
        f"../../invoke/{peer}/method/seen?",
        f"..%2F..%2Finvoke%2F{peer}%2Fmethod%2Fx",
        "%2e%2e/%2e%2e/shutdown",
        "..",
        ".",
        "th_1/../../shutdown",
        "th_1?x=1",
        "th_1#frag",
        "th 1",
        "th_\u00e9",
        "a" * 65,
        "",
        f"../../publish/pubsub/{peer}?",
        "th_1\u0000",
        "%00",
        "th_1/",
    ]


def _still_standing(mesh: Mesh) -> None:
    for app in mesh.stack.apps:
        assert httpx.get(f"{app.dapr_url}/v1.0/healthz", timeout=10).status_code == 204, app.name
    # What its own daprd asks at start-up (/dapr/config, /dapr/subscribe), and the
    # readiness check, aside.
    seen = [
        s
        for s in httpx.get(f"{mesh.peer.url}/seen", timeout=10).json()
        if not s["path"].startswith("/dapr/") and s["path"] != "/health"
    ]
    assert seen == [], seen


def _refused(response: httpx.Response) -> None:
    assert response.status_code in (400, 404, 422), (response.status_code, response.text)


def test_ids_in_the_openai_doors_are_refused_before_any_call(mesh: Mesh) -> None:
    http = mesh.api.http
    for bad in hostile_ids(mesh.peer.app_id):
        message = [{"role": "user", "content": "hello"}]
        chat = http.post(
            "/v1/chat/completions",
            json={"model": "assistant", "messages": message, "metadata": {"thread_id": bad}},
        )
        _refused(chat)
        assert chat.status_code == 422 or bad == "", chat.text
        if bad:
            assert "thread_id" in chat.json()["error"]["message"]
        as_string = http.post(
            "/v1/responses", json={"model": "assistant", "input": "hello", "conversation": bad}
        )
        as_object = http.post(
            "/v1/responses",
            json={"model": "assistant", "input": "hello", "conversation": {"id": bad}},
        )
        for answer in (as_string, as_object):
            _refused(answer)
            assert "conversation" in answer.json()["error"]["message"], answer.text
        if bad.isascii() and "\u0000" not in bad:  # a header can carry only these
            header = http.post(
                "/v1/chat/completions",
                json={"model": "assistant", "messages": message},
                headers={"threadhost-thread-id": bad},
            )
            if bad:
                _refused(header)
        previous = http.post(
            "/v1/responses",
            json={"model": "assistant", "input": "hello", "previous_response_id": f"resp_{bad}"},
        )
        _refused(previous)
    _still_standing(mesh)


def test_ids_in_the_mcp_door_are_refused_before_any_call(mesh: Mesh) -> None:
    from mcp import Client

    async def scenario() -> list[tuple[bool, str]]:
        answers = []
        async with Client(f"{mesh.stack.api.url}/v1/mcp") as client:
            for bad in hostile_ids(mesh.peer.app_id):
                result = await client.call_tool(
                    "ask_assistant", {"message": "hello", "thread_id": bad}
                )
                answers.append((result.is_error, result.content[0].text))
        return answers

    for is_error, text in asyncio.run(scenario()):
        assert is_error, text
        assert "thread_id" in text, text
    _still_standing(mesh)


def test_ids_in_paths_are_refused_before_any_call(mesh: Mesh) -> None:
    thread = mesh.api.create_thread()
    run = mesh.api.say(thread, "hello")["run"]["run_id"]
    url = urlsplit(mesh.stack.api.url)
    paths = []
    for bad in hostile_ids(mesh.peer.app_id):
        for encoded in {quote(bad, safe=""), quote(bad, safe="/?#%")}:
            paths += [
                ("GET", f"/v1/threads/{encoded}"),
                ("GET", f"/v1/threads/{thread}/runs/{encoded}"),
                ("GET", f"/v1/threads/{thread}/runs/{encoded}/events"),
                ("POST", f"/v1/threads/{thread}/runs/{encoded}/cancel"),
                ("DELETE", f"/v1/threads/{thread}/followups/{encoded}"),
                ("POST", f"/v1/threads/{encoded}/messages"),
                ("DELETE", f"/v1/threads/{encoded}"),
            ]
    for method, path in paths:
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        connection.request(
            method,
            path,
            body=json.dumps({"content": "hi"}),
            headers={"content-type": "application/json"},
        )
        answer = connection.getresponse()
        body = answer.read()
        # (An empty id is a trailing slash: redirected to the route without it.)
        assert answer.status in (307, 400, 404, 405, 422), (method, path, answer.status, body)
        connection.close()
    _still_standing(mesh)
    # The thread and its run are as they were.
    assert mesh.api.run(thread, run)["status"] == "completed"
    assert len(mesh.api.messages(thread)) == 2


def test_a_caller_picks_no_model_its_agent_does_not_allow(mesh: Mesh) -> None:
    api = mesh.api
    thread = api.create_thread(agent="support")
    rows = stored_rows(mesh.stack.config)
    refused = api.http.post(
        f"/v1/threads/{thread}/messages", json={"content": "hi", "model": "openai:o1-pro"}
    )
    assert refused.status_code == 422 and "o1-pro" in refused.json()["detail"], refused.text
    for door, body in (
        (
            "/v1/chat/completions",
            {
                "model": "support@anthropic:claude-opus-4-1",
                "messages": [{"role": "user", "content": "hi"}],
                "metadata": {"thread_id": thread},
            },
        ),
        (
            "/v1/responses",
            {"model": "support@anthropic:claude-opus-4-1", "input": "hi", "conversation": thread},
        ),
    ):
        answer = api.http.post(door, json=body)
        assert answer.status_code == 422, answer.text
        assert "claude-opus-4-1" in answer.json()["error"]["message"], answer.text
    assert stored_rows(mesh.stack.config) == rows  # nothing of it was written
    assert api.say(thread, "Where is my order 1001?")["run"]["status"] == "completed"


def test_no_schedule_comes_more_than_once_a_minute_from_the_api_or_a_model(mesh: Mesh) -> None:
    api = mesh.api
    thread = api.create_thread(agent="eager")
    for when in (
        "cron * * * * * *",
        "cron */1 * * * * *",
        "P" + "9" * 150 + "D",
        "every PT1S",
        "2026-12-08T09:00:00+01:00\u0000",
    ):
        refused = api.http.post(
            f"/v1/threads/{thread}/followups", json={"when": when, "note": "spam"}
        )
        assert refused.status_code == 422, (when, refused.text)
    answer = api.say(thread, "Remind me all the time.")
    assert answer["run"]["status"] == "completed"
    results = [m for m in answer["messages"] if m["kind"] == "tool_result"]
    assert len(results) == 3 and all(r["is_error"] for r in results), results
    assert api.http.get(f"/v1/threads/{thread}/followups").json()["followups"] == []


def test_a_thread_names_no_webhook_outside_its_agents_urls(mesh: Mesh) -> None:
    rows = stored_rows(mesh.stack.config)
    for url in (
        "https://crm.example.com/hooks@evil.net/x",
        "https://crm.example.com:443@169.254.169.254/hooks/",
        "https://crm.example.com.evil.net/hooks/x",
        "https://crm.example.com/hooks/../../admin",
        "https://crm.example.com/hooks/%2e%2e/admin",
        "https://crm.example.com/hooks/x\ty",
        "https://crm.example.com/hooksevil",
    ):
        refused = mesh.api.http.post("/v1/threads", json={"agent": "hooked", "webhook_url": url})
        assert refused.status_code == 422, (url, refused.text)
    assert stored_rows(mesh.stack.config) == rows
    allowed = mesh.api.http.post(
        "/v1/threads",
        json={"agent": "hooked", "webhook_url": "https://crm.example.com/hooks/threads"},
    )
    assert allowed.status_code == 201, allowed.text


@pytest.mark.parametrize("token", ["t\u00f6ken".encode(), b"\xff\xfe", "\u20ac".encode()])
def test_a_token_header_of_any_bytes_is_refused_not_dropped(mesh: Mesh, token: bytes) -> None:
    actor_host, gateway = mesh.stack.apps[0], mesh.stack.apps[-1]
    for app, method, path, status, extra in (
        (actor_host, "PUT", "/actors/Thread/th_1/method/Describe", 403, {}),
        (gateway, "POST", "/internal/run-events", 403, {}),
        (gateway, "GET", "/v1/threads", 401, {"dapr-caller-app-id": "billing"}),
    ):
        url = urlsplit(app.url)
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        connection.putrequest(method, path)
        connection.putheader("dapr-api-token", token)
        for name, value in extra.items():
            connection.putheader(name, value)
        connection.putheader("content-length", "2")
        connection.putheader("content-type", "application/json")
        connection.endheaders(b"{}")
        answer = connection.getresponse()
        assert answer.status == status, (path, answer.status, answer.read())
        answer.read()
        # The connection still serves the next request.
        connection.request("GET", "/health")
        assert connection.getresponse().status == 200
        connection.close()


def test_call_ids_are_only_data_on_every_door(mesh: Mesh) -> None:
    """A waiting run's call ids as a caller may send them back: a hostile one is an
    unknown call (422), never a path, and the run still waits for its real one."""
    api = mesh.api
    thread = api.create_thread(agent="asker")
    run = api.say(thread, "Cancel my order.")["run"]
    for bad in hostile_ids(mesh.peer.app_id):
        resumed = api.http.post(
            f"/v1/threads/{thread}/runs/{run['run_id']}/resume",
            json={"actions": [{"type": "input", "call_id": bad, "answer": "Order 1002"}]},
        )
        assert resumed.status_code == 422, (bad, resumed.text)
        chat = api.http.post(
            "/v1/chat/completions",
            headers={"threadhost-thread-id": thread},
            json={
                "model": "asker",
                "messages": [{"role": "tool", "tool_call_id": bad, "content": "x"}],
            },
        )
        assert chat.status_code in (409, 422), (bad, chat.text)
        response = api.http.post(
            "/v1/responses",
            json={
                "model": "asker",
                "conversation": thread,
                "input": [{"type": "function_call_output", "call_id": bad, "output": "x"}],
            },
        )
        assert response.status_code in (409, 422), (bad, response.text)
    _still_standing(mesh)
    assert api.run(thread, run["run_id"])["status"] == "requires_action"


def test_a_caller_holds_a_bounded_number_of_open_streams(mesh: Mesh) -> None:
    """THREADHOST_MAX_STREAMS_PER_CALLER (32) streams open at once per gateway replica;
    one more is a 429 with Retry-After, and closing one frees its place."""
    import asyncio

    api = mesh.api
    thread = api.create_thread(agent="slow")
    run = api.http.post(
        f"/v1/threads/{thread}/messages",
        json={"content": "Where is order 1001?", "mode": "background"},
    )
    url = f"{mesh.stack.api.url}{run.headers['location']}/events"

    async def scenario() -> tuple[list[int], int, dict]:
        async with httpx.AsyncClient(timeout=30) as http:

            async def open_one() -> httpx.Response:
                return await http.send(
                    http.build_request("GET", url, headers={"accept": "text/event-stream"}),
                    stream=True,
                )

            held = [await open_one() for _ in range(32)]
            one_more = await open_one()
            refused = (one_more.status_code, dict(one_more.headers))
            await one_more.aread()
            await held.pop().aclose()
            after = await open_one()
            codes = [r.status_code for r in held] + [after.status_code]
            for response in [*held, after]:
                await response.aclose()
            return codes, *refused

    codes, status, headers = asyncio.run(scenario())
    assert codes == [200] * 32, codes
    assert status == 429 and int(headers["retry-after"]) > 0, (status, headers)
