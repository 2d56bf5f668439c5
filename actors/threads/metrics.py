"""Prometheus metrics of the actor host, read from the events each step produces."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from actors.engine.run import RunEvent, StatusChanged, StepCompleted

RUNS = Counter("threadhost_runs_total", "Runs that reached a status", ["status"])
STEPS = Histogram(
    "threadhost_step_seconds",
    "Time a step took, by kind",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
MODEL_LATENCY = Histogram(
    "threadhost_model_call_seconds",
    "Model call latency",
    ["vendor", "model"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
TOKENS = Counter(
    "threadhost_model_tokens_total", "Tokens by model and kind", ["vendor", "model", "kind"]
)
TOOL_CALLS = Counter(
    "threadhost_tool_calls_total", "Tool calls by tool and outcome", ["tool", "outcome"]
)
ACTIVE_ACTORS = Gauge("threadhost_active_thread_actors", "Thread actors active in this host")


# Tool names label a series only when the host knows them (its registry, and the tools an
# agent file names): a model can make up any name, and each new label is a series for
# good on the open /metrics. Any other name is counted as "other".
_known_tools: set[str] = set()
MAX_TOOL_LABELS = 1000


def know_tools(names: Iterable[str]) -> None:
    """Tool names that may label the tool-call metric (what the host and its agents
    define, never what a model calls)."""
    for name in names:
        if len(_known_tools) < MAX_TOOL_LABELS:
            _known_tools.add(name)


def tool_label(name: str) -> str:
    return name if name in _known_tools else "other"


def observe(events: list[RunEvent], step_seconds: float) -> None:
    for event in events:
        data = event.data
        if isinstance(event, StatusChanged):
            RUNS.labels(event.status).inc()
        elif isinstance(event, StepCompleted):
            STEPS.labels(event.kind).observe(step_seconds)
            if "model" in data:
                vendor, model = data.get("vendor", ""), data["model"]
                MODEL_LATENCY.labels(vendor, model).observe(data.get("latency_ms", 0) / 1000)
                for kind, count in data.get("usage", {}).items():
                    TOKENS.labels(vendor, model, kind.removesuffix("_tokens")).inc(count)
            for message in data.get("messages", []):
                if message.get("kind") == "tool_result":
                    outcome = "error" if message.get("is_error") else "ok"
                    TOOL_CALLS.labels(tool_label(message["name"]), outcome).inc()
