"""Text that generators never produce, in every string of every public route: lone
surrogates, NUL, over-long, 4-byte characters, right-to-left marks, combining marks, a
BOM, noncharacters. No answer is a 5xx, every refusal is a problem document (on the
OpenAI door, OpenAI's error object, as its clients read), no connection is dropped, and
text that is accepted arrives as sent."""

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from gateway.problems import OPENAI_ROUTES
from tests.conftest import Api

ODD_TEXT = [
    "\ud800",
    "x\udfff",
    "a\ud83d b",
    "\x00",
    "nul\x00inside",
    "😀🏳️‍🌈𝄞",
    "\u202eevil\u202c",
    "e\u0301\u0301\u0301",
    "\ufeffbom",
    "\uffff\U0010ffff",
    "line\r\nbreak",
    "x" * 20_000,
]
# The same as raw path segments and header values (bytes: a URL or header cannot carry a
# surrogate as text, only as bytes that are not UTF-8).
ODD_BYTES = [b"%ED%A0%80", b"%00", b"%F0%9F%98%80", b"%E2%80%AE", b"x" * 300, b"%FF%FE"]


def strings_in(value: Any, path: tuple = ()) -> Iterator[tuple]:
    """The path of every string in a JSON value, and of every object (for a new key)."""
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        yield (*path, None)  # a key of ours
        for key, inner in value.items():
            yield from strings_in(inner, (*path, key))
    elif isinstance(value, list):
        for n, inner in enumerate(value):
            yield from strings_in(inner, (*path, n))


def with_string(value: Any, path: tuple, text: str) -> Any:
    if not path:
        return text
    head, rest = path[0], path[1:]
    if head is None:
        return {**value, text: "v"}
    copy = list(value) if isinstance(value, list) else dict(value)
    copy[head] = with_string(value[head], rest, text)
    return copy


class Connection:
    """One kept-alive connection: a request that drops it fails the next one."""

    def __init__(self, base_url: str) -> None:
        url = urlsplit(base_url)
        self.http = http.client.HTTPConnection(url.hostname, url.port, timeout=60)

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, Any] | None = None,
    ) -> tuple[int, str, bytes]:
        self.http.putrequest(method, path, skip_accept_encoding=True)
        for name, value in {"content-type": "application/json", **(headers or {})}.items():
            self.http.putheader(name, value)
        self.http.putheader("content-length", str(len(body or b"")))
        self.http.endheaders(body)
        response = self.http.getresponse()
        return response.status, response.getheader("content-type", ""), response.read()


def check(
    connection: Connection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, Any] | None = None,
) -> int:
    status, media_type, answer = connection.send(method, path, body, headers)
    where = f"{method} {path[:80]} {(body or b'')[:120]!r}"
    assert status < 500, (where, status, answer[:300])
    if status >= 400 and path.startswith(OPENAI_ROUTES):
        assert media_type == "application/json", (where, media_type)
        assert json.loads(answer)["error"]["message"], where
    elif status >= 400:
        assert media_type == "application/problem+json", (where, media_type)
        assert json.loads(answer)["status"] == status
    # The connection serves the next request.
    status_after, _, _ = connection.send("GET", "/health")
    assert status_after == 200, where
    return status


@pytest.fixture(scope="module")
def api(split_stack) -> Api:
    return Api(split_stack.api.url)


def test_odd_text_in_every_string_of_every_json_body(split_stack, api) -> None:
    schema = httpx.get(f"{split_stack.api.url}/openapi.json", timeout=30).json()
    # Turns go to a thread whose runs end at once; answers to a run that waits.
    thread, asking = api.create_thread(), api.create_thread(agent="asker")
    run = api.say(asking, "a question please")["run"]["run_id"]
    connection = Connection(split_stack.api.url)
    bodies = 0
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            ref = content["application/json"]["schema"]
            ref = next((r for r in ref.get("anyOf", [ref]) if "$ref" in r), ref)["$ref"]
            examples = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]["examples"]
            target = path.replace("{thread_id}", asking if "{run_id}" in path else thread)
            target = target.replace("{run_id}", run)
            for example in examples:
                for where in strings_in(example):
                    for text in ODD_TEXT:
                        body = json.dumps(with_string(example, where, text)).encode()
                        check(connection, method.upper(), target, body)
                        bodies += 1
    assert bodies > 300


def test_odd_bytes_in_every_path_segment_and_header(split_stack, api) -> None:
    thread = api.create_thread()
    connection = Connection(split_stack.api.url)
    schema = httpx.get(f"{split_stack.api.url}/openapi.json", timeout=30).json()
    for path, item in schema["paths"].items():
        for method in item:
            for odd in ODD_BYTES:
                segment = odd.decode("latin-1")
                for name in ("{thread_id}", "{run_id}"):
                    if name in path:
                        target = path.replace("{thread_id}", thread).replace(name, segment)
                        check(
                            connection,
                            method.upper(),
                            target.replace("{run_id}", "run_x"),
                            b"{}" if method != "get" else None,
                        )
                raw = odd.replace(b"%", b"")  # as header bytes, not %-escapes
                check(
                    connection,
                    method.upper(),
                    path.replace("{thread_id}", thread).replace("{run_id}", "run_x"),
                    b"{}" if method != "get" else None,
                    {"idempotency-key": raw, "last-event-id": raw},
                )
    # (The DELETEs above erased the thread.) A query value that is not UTF-8 either:
    assert check(connection, "GET", "/v1/threads?offset=%ED%A0%80&limit=%00") == 422


def test_accepted_odd_text_arrives_as_sent(api) -> None:
    thread = api.create_thread()
    accepted = [
        text
        for text in ODD_TEXT
        if text.encode("utf-8", "ignore").decode() == text
        and "\x00" not in text
        and len(text) <= 16_000
    ]
    for text in accepted:
        response = api.http.post(f"/v1/threads/{thread}/messages", json={"content": text})
        assert response.status_code == 200, response.text
        assert response.json()["messages"][0]["content"] == text
    assert [m["content"] for m in api.messages(thread) if m["role"] == "user"] == accepted


def test_odd_text_in_every_argument_of_the_mcp_door(split_stack, api) -> None:
    """The MCP door's tools, called by the `mcp` SDK's client (and, with what that client
    cannot encode, as raw JSON-RPC): every argument refused or taken as sent, never a
    failure of the door, and the connection stays."""
    import asyncio

    from mcp import Client

    thread = api.create_thread(agent="assistant")
    cases = [
        (
            {"message": text},
            {"message": "hi", "thread_id": text},
            {"message": text, "thread_id": thread},
        )
        for text in ODD_TEXT[:-1]
    ]
    encodable = [
        c for c in cases if c[0]["message"].encode("utf-8", "ignore").decode() == c[0]["message"]
    ]

    async def scenario() -> None:
        async with Client(f"{split_stack.api.url}/v1/mcp") as client:
            for arguments in (a for case in encodable for a in case):
                result = await client.call_tool("ask_assistant", arguments)
                if not result.is_error:
                    reply = json.loads(result.content[0].text)["reply"]
                    assert reply == f"You said: {arguments['message']}", (arguments, reply)

    asyncio.run(scenario())
    connection = Connection(split_stack.api.url)
    for arguments in (a for case in cases for a in case):
        call = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "ask_assistant", "arguments": arguments},
        }
        status, _, answer = connection.send(
            "POST",
            "/v1/mcp",
            json.dumps(call).encode(),
            {"accept": "application/json, text/event-stream"},
        )
        # The SDK's own answers: JSON-RPC, a tool's error or a parse error, never a 5xx.
        assert status in (200, 400), (arguments, status, answer[:300])
        assert "jsonrpc" in json.loads(answer), answer[:300]
        assert connection.send("GET", "/health")[0] == 200
