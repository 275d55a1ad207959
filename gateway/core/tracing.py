"""OpenTelemetry traces of a document's life: API → queue → discovery → AS4 send → receipt, and
AS4 receive → store → webhook, with the message and document ids as span attributes.

The code uses only the OpenTelemetry API, which does nothing until an SDK is configured: set
``telemetry.otlp_endpoint`` (needs ``pip install 'peppol-gateway[otel]'``) and spans go to that
OTLP/HTTP collector. A span's context crosses the queue as a W3C ``traceparent`` stored with the
job or event, so a delivery minutes later continues the trace of its submission.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from gateway.core.config import ConfigError, Settings

__all__ = ["add_trace_ids", "configure_tracing", "continued", "span", "traceparent"]

tracer = trace.get_tracer("peppol-gateway")


def configure_tracing(settings: Settings) -> bool:
    """Install the SDK with an OTLP/HTTP exporter when an endpoint is configured."""
    if not settings.otlp_endpoint:
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ConfigError("telemetry.otlp_endpoint", "needs pip install 'peppol-gateway[otel]'") from None
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint)))
    trace.set_tracer_provider(provider)
    return True


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[trace.Span]:
    """A span in the current trace; ``None`` attributes are left out."""
    with tracer.start_as_current_span(name, attributes={k: v for k, v in attributes.items() if v is not None}) as s:
        yield s


def traceparent() -> str | None:
    """The current span's context as a W3C traceparent, to store with queued work."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def continued(parent: str | None) -> Iterator[None]:
    """Make a stored traceparent the current context (no-op for None)."""
    if not parent:
        yield
        return
    token = otel_context.attach(propagate.extract({"traceparent": parent}))
    try:
        yield
    finally:
        otel_context.detach(token)


def add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: every log line inside a span carries its trace and span ids."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", format(context.trace_id, "032x"))
        event.setdefault("span_id", format(context.span_id, "016x"))
    return event
