"""Property-based fuzzing of the public API from its own OpenAPI schema: no 5xx, and
every answer is one the document describes (status, media type, body, headers)."""

import subprocess
import sys

import httpx


def test_schemathesis_finds_no_server_error(stack, tmp_path) -> None:
    schema = httpx.get(f"{stack.api.url}/openapi.json", timeout=30).json()
    assert all(
        not path.startswith(("/actors", "/dapr", "/internal/run-")) for path in schema["paths"]
    ), "daprd's callbacks leaked into the public schema"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{stack.api.url}/openapi.json",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance,response_headers_conformance",
            "--max-examples",
            "15",
            "--request-timeout",
            "30",
            "--seed",
            "20261122",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=170,
        cwd=tmp_path,
    )  # its cache goes there
    assert result.returncode == 0, result.stdout[-4000:]


def test_the_schema_carries_examples_for_bodies_and_main_answers(stack) -> None:
    schema = httpx.get(f"{stack.api.url}/openapi.json", timeout=30).json()
    components = schema["components"]["schemas"]
    for name in ("CreateThread", "PostMessage", "ThreadView", "RunView", "MessageView"):
        assert components[name].get("examples"), f"{name} has no example"
    turn = schema["paths"]["/v1/threads/{thread_id}/messages"]["post"]
    assert {"200", "202", "400", "401", "404", "409", "413", "422", "429"} <= set(turn["responses"])
