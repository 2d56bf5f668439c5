"""What operators read: Prometheus metrics after a conversation, and JSON logs that carry
the thread and run they are about."""

import json
import re

from tests.conftest import Api, wait_for
from threadhost.stack import Stack


def metric(text: str, name: str, **labels: str) -> float:
    selector = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = rf"^{name}\{{{selector}\}} (\S+)$" if labels else rf"^{name} (\S+)$"
    found = re.search(pattern, text, re.M)
    assert found, f"no sample {name}{{{selector}}} in /metrics"
    return float(found.group(1))


def test_metrics_and_logs_after_a_conversation(stack) -> None:
    api = Api(stack.api.url)
    thread = api.create_thread(agent="support")
    turn = api.say(thread, "Where is my order 1001?")
    api.say(thread, "Thanks!")

    text = api.http.get("/metrics").text
    assert metric(text, "threadhost_runs_total", status="completed") == 2
    assert metric(text, "threadhost_runs_total", status="running") == 2
    assert metric(text, "threadhost_tool_calls_total", tool="query_order", outcome="ok") == 2
    assert metric(text, "threadhost_tool_calls_total", tool="query_logistics", outcome="ok") == 2
    assert (
        metric(
            text, "threadhost_model_tokens_total", vendor="scripted", model="scripted", kind="input"
        )
        > 0
    )
    assert metric(text, "threadhost_step_seconds_count", kind="call_model") == 6
    assert metric(text, "threadhost_step_seconds_count", kind="run_tools") == 4
    assert (
        metric(text, "threadhost_model_call_seconds_count", vendor="scripted", model="scripted")
        == 6
    )
    assert metric(text, "threadhost_active_thread_actors") == 1

    lines = (stack.config.data_dir / "logs" / "threadhost.log").read_text().splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    about_run = [e for e in entries if e.get("run_id") == turn["run"]["run_id"]]
    assert about_run and all(e["thread_id"] == thread for e in about_run)
    messages = [e["message"] for e in about_run]
    assert any(" started with scripted" in m for m in messages)
    assert "run.status completed" in messages


def test_one_trace_runs_from_the_gateway_through_the_actor_to_the_model_call(
    stack_config, stacks, tmp_path
) -> None:
    spans_file = tmp_path / "spans.jsonl"
    stack = Stack(stack_config(env={"THREADHOST_TRACE_FILE": str(spans_file)}), split=True)
    stacks.append(stack)
    stack.start()
    api = Api(stack.api.url)
    thread = api.create_thread(agent="support")
    turn = api.say(thread, "Where is my order 1001?")

    # Spans are named by route template, not by path: a bounded set of names.
    name = "POST /v1/threads/{thread_id}/messages"

    def spans_with_the_request() -> list[dict] | None:
        # A server span ends just after its response is sent: it may land a moment later.
        spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
        return spans if any(s["name"] == name for s in spans) else None

    spans = wait_for(spans_with_the_request, 10, "the gateway's request span")
    [request] = [s for s in spans if s["name"] == name]
    assert not any(thread in s["name"] for s in spans)
    assert (
        request["attributes"].get(
            "http.response.status_code", request["attributes"].get("http.status_code")
        )
        == 200
    )
    steps = [
        s
        for s in spans
        if s["name"].startswith("step ")
        and s["attributes"]["threadhost.run_id"] == turn["run"]["run_id"]
    ]
    assert [s["name"] for s in steps].count("step call_model") == 3
    assert {s["trace_id"] for s in steps} == {request["trace_id"]}
    actor_calls = [
        s
        for s in spans
        if s["trace_id"] == request["trace_id"]
        and "/method/PostMessage" in json.dumps(s["attributes"])
        and s["name"].startswith("PUT /actors/")
    ]
    assert actor_calls, "the actor host's span for PostMessage is not in the gateway's trace"
    # The gateway's own calls to its daprd are client spans in the same trace.
    assert any(
        s["trace_id"] == request["trace_id"]
        and s["name"].startswith("POST")
        and s["parent_id"] is not None
        and s is not request
        for s in spans
    )


def test_logged_errors_carry_no_stack_trace() -> None:
    import logging

    from threadhost.common.logs import JsonFormatter

    try:
        raise ValueError("bad value")
    except ValueError:
        record = logging.getLogger("t").makeRecord(
            "t", logging.ERROR, __file__, 1, "failed", (), __import__("sys").exc_info()
        )
    entry = json.loads(JsonFormatter("test").format(record))
    assert entry["error"] == "ValueError: bad value"
    assert "Traceback" not in json.dumps(entry)
