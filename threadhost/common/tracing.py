"""OpenTelemetry traces from the gateway through the actor to the model call, joined with
the W3C trace context Dapr passes along (the `traceparent` header).

Off unless THREADHOST_OTLP_ENDPOINT (an OTLP/HTTP collector) or THREADHOST_TRACE_FILE (one
JSON span per line, for local inspection and tests) is set.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

tracer = trace.get_tracer("threadhost")


class FileExporter(SpanExporter):
    def __init__(self, path: Path) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self.path.open("a") as out:
            for span in spans:
                out.write(
                    json.dumps(
                        {
                            "name": span.name,
                            "trace_id": f"{span.context.trace_id:032x}",
                            "span_id": f"{span.context.span_id:016x}",
                            "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
                            "attributes": dict(span.attributes or {}),
                        }
                    )
                    + "\n"
                )
        return SpanExportResult.SUCCESS


def configure(instance: str, otlp_endpoint: str | None, trace_file: Path | None) -> bool:
    """Sets the process's tracer provider; False (and nothing set) when tracing is off."""
    if not otlp_endpoint and not trace_file:
        return False
    provider = TracerProvider(
        resource=Resource.create({"service.name": "threadhost", "service.instance.id": instance})
    )
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    if trace_file:
        provider.add_span_processor(SimpleSpanProcessor(FileExporter(trace_file)))
    trace.set_tracer_provider(provider)
    return True


def instrument(app: Any) -> None:
    """Server spans named by route template ("POST /v1/threads/{thread_id}/messages": a
    bounded set of names), with status and errors, continuing the caller's or daprd's
    trace context; client spans for every call to daprd, whose traceparent carries them
    on. Both from OpenTelemetry's own instrumentations."""
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, excluded_urls="/health,/metrics,/healthz", exclude_spans=["receive", "send"]
    )
    if not AioHttpClientInstrumentor().is_instrumented_by_opentelemetry:
        AioHttpClientInstrumentor().instrument()


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def context_of(traceparent: str | None) -> Context | None:
    return propagate.extract({"traceparent": traceparent}) if traceparent else None
