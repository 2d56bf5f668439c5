"""In-process checks of the edges: what the API publishes about itself, how owners are
spelled, what the environment may say, and how the client reads an event stream."""

import pytest
from dapr.ext.fastapi import DaprActor
from fastapi import FastAPI
from fastapi.testclient import TestClient

from actors.dapr_host.actor_calls import ActorMethodCalls
from actors.engine.text import check_json_text, text_problem
from threadhost.app import SidecarOnly, create_app, route_owner
from threadhost.client import EventStreamParser
from threadhost.common.owners import person_owner, service_owner
from threadhost.common.settings import Settings


@pytest.fixture(scope="module")
def schema() -> dict:
    return create_app(Settings(auth_mode="none")).openapi()


def test_every_error_a_route_sends_is_in_the_openapi_as_a_problem_document(schema) -> None:
    paths = schema["paths"]
    expected = {
        ("/v1/threads", "post"): {400, 401, 413, 422, 429, 503},
        ("/v1/threads", "get"): {401, 422, 429, 503},
        ("/v1/threads/{thread_id}", "get"): {401, 404, 429, 503},
        ("/v1/threads/{thread_id}/messages", "post"): {400, 401, 404, 409, 413, 422, 429},
        ("/v1/threads/{thread_id}/runs/{run_id}/resume", "post"): {400, 404, 409, 413, 422},
        ("/v1/threads/{thread_id}/runs/{run_id}/cancel", "post"): {404, 413},
        ("/v1/threads/{thread_id}/runs/{run_id}/events", "get"): {404, 429},
    }
    for (path, method), statuses in expected.items():
        responses = paths[path][method]["responses"]
        for status in statuses:
            content = responses[str(status)]["content"]
            assert list(content) == ["application/problem+json"], (path, method, status)
            assert content["application/problem+json"]["schema"]["$ref"].endswith("/ProblemView")
    assert "202" in paths["/v1/threads/{thread_id}/messages"]["post"]["responses"]


def test_the_openapi_allows_only_what_the_server_accepts(schema) -> None:
    components = schema["components"]["schemas"]
    for name in (
        "CreateThread",
        "PostMessage",
        "ResumeRun",
        "ClientTool",
        "ToolOutput",
        "Approval",
        "Answer",
    ):
        assert components[name]["additionalProperties"] is False, name
    for name in ("ToolOutput", "Approval", "Answer"):
        assert "type" in components[name]["required"], name
    parameters = components["ClientTool"]["properties"]["parameters"]
    assert parameters["properties"]["type"] == {"const": "object"}
    assert parameters["required"] == ["type"]
    assert components["PostMessage"]["properties"]["content"]["pattern"] == "^[^\\u0000]*$"
    assert not any(route_owner(path) == "daprd" for path in schema["paths"])


@pytest.mark.parametrize(
    "path,owner",
    [
        ("/health", "open"),
        ("/metrics", "open"),
        ("/docs", "open"),
        ("/openapi.json", "open"),
        ("/", "open"),
        ("/chat", "open"),
        ("/chat/chat.js", "open"),
        ("/chat/other.js", "daprd"),
        ("/v1/threads", "callers"),
        ("/v1/threads/x/messages", "callers"),
        ("/v1/chat/completions", "callers"),
        ("/v1/responses", "callers"),
        ("/v1/mcp", "callers"),
        ("/v1/a2a/support", "callers"),
        ("/.well-known/agent-card.json", "open"),
        ("/internal/run-events", "daprd"),
        ("/internal/actors", "daprd"),
        ("/dapr/config", "daprd"),
        ("/actors/Thread/x/method/Describe", "daprd"),
        ("/healthz", "daprd"),
        ("/v1x", "daprd"),
        ("/anything-new", "daprd"),
    ],
)
def test_every_path_has_an_owner_and_new_ones_are_daprds(path, owner) -> None:
    assert route_owner(path) == owner


def test_a_405_names_every_method_the_path_takes() -> None:
    client = TestClient(create_app(Settings(auth_mode="none")))
    answer = client.put("/v1/threads/th_1")
    assert answer.status_code == 405 and answer.headers["allow"] == "GET, DELETE"
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"].endswith("/method-not-allowed")


def test_owners_of_different_kinds_never_collide() -> None:
    owners = [
        person_owner("app:support-portal"),
        service_owner("support-portal"),
        person_owner("b", "a"),
        person_owner("a/b"),
        person_owner("b", "a/"),
        person_owner("a%2Fb"),
        person_owner("alice"),
        person_owner("alice", "acme"),
    ]
    assert len(set(owners)) == len(owners)
    assert not any(o.startswith("app:") for o in owners if o != service_owner("support-portal"))
    # Unchanged for claims without separators: threads made before namespacing keep theirs.
    assert person_owner("alice") == "alice" and person_owner("sam", "acme") == "acme/sam"


@pytest.mark.parametrize(
    "value,problem",
    [
        ("2024-01-05", None),
        ("😀 emoji", None),
        ("\u202eRTL", None),
        ("e\u0301", None),
        ("tab\tnew\nline", None),
        ("a\x00b", "NUL"),
        ("x\ud800", "surrogate"),
        ("\udfff", "surrogate"),
    ],
)
def test_what_counts_as_text(value, problem) -> None:
    found = text_problem(value)
    assert (found is None) if problem is None else (problem in found)


def test_every_string_of_a_declared_json_schema_is_checked() -> None:
    check_json_text({"type": "object", "properties": {"a": {"enum": ["x", 1, None]}}})
    with pytest.raises(ValueError, match=r"properties\.a\.enum\[1\]"):
        check_json_text({"type": "object", "properties": {"a": {"enum": ["x", "\ud800"]}}})


def test_lists_in_the_environment_take_commas_or_json(monkeypatch) -> None:
    monkeypatch.setenv("THREADHOST_TOOL_MODULES", "shop.tools, shop.more")
    monkeypatch.setenv("THREADHOST_SERVICE_CALLERS", '["support-portal", "billing"]')
    monkeypatch.setenv("THREADHOST_JWT_ALGORITHMS", "RS256")
    settings = Settings()
    assert settings.tool_modules == ["shop.tools", "shop.more"]
    assert settings.service_callers == ["support-portal", "billing"]
    assert settings.jwt_algorithms == ["RS256"]


def test_the_client_reads_event_streams_as_the_standard_says() -> None:
    parser = EventStreamParser()
    lines = [
        "retry: 2500",
        ": a comment",
        "id:7",
        "event:run.status",
        'data:{"status":',
        'data: "running"}',
        "unknown: field",
        "",
        "data",
        "",  # a field without a colon, and an event without id or type
        "event: token.delta",
        "",
        "",
    ]  # no data: nothing is dispatched
    events = [event for line in lines if (event := parser.feed(line)) is not None]
    assert [(e.event, e.data, e.id) for e in events] == [
        ("run.status", {"status": "running"}, 7),
        ("message", {}, None),
    ]
    assert parser.retry_ms == 2500 and parser.last_event_id == "7"


def test_actor_method_calls_are_answered_as_the_sdks_route_answers_them() -> None:
    """The actor host serves daprd's actor method calls itself (actors/dapr_host/actor_calls.py);
    its answers are the extension's, and the token check still comes first."""
    extension = FastAPI()
    DaprActor(extension)
    host = create_app(Settings(role="actors", auth_mode="none", APP_API_TOKEN="daprd's"))
    path = "/actors/NotRegistered/x/method/Describe"
    with TestClient(extension) as theirs, TestClient(host) as ours:
        expected = theirs.put(path, content=b"{}")
        answered = ours.put(path, content=b"{}", headers={"dapr-api-token": "daprd's"})
        refused = ours.put(path, content=b"{}")
    assert expected.status_code == answered.status_code == 500
    assert answered.json() == expected.json()
    assert answered.json()["errorCode"] == "UNKNOWN"
    assert "NotRegistered" in answered.json()["message"]
    assert refused.status_code == 403
    # Served by ActorMethodCalls, inside SidecarOnly (the outer one checks the token).
    order = [m.cls for m in host.user_middleware]
    assert order.index(SidecarOnly) < order.index(ActorMethodCalls)
