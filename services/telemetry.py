"""Tracing set-up and the one way trace context crosses a hop.

A sampled message gets spans in ingest (``tickwire-ingest``, child of the producer's span)
and in the gateway (``tickwire-gateway``, child of ingest's), and the browser's ``report``
becomes a last span in the same trace. Unsampled messages cost no span at all: callers
check ``sampled(traceparent)`` — a string test — before touching the SDK.

Export is OTLP/HTTP. Whether it is on is a setting (``BusSettings.tracing``: an OTLP
endpoint is configured and the SDK is not disabled); everything else — endpoint, sampler
and ratio, headers — the SDK reads from the standard ``OTEL_*`` variables itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

INGEST = "tickwire-ingest"
GATEWAY = "tickwire-gateway"
SIMULATOR = "tickwire-simulator"

# Attribute names, in one place (OpenTelemetry messaging conventions where one exists).
ATTR_SYSTEM = "messaging.system"
ATTR_DESTINATION = "messaging.destination.name"
ATTR_MESSAGE_ID = "messaging.message.id"
ATTR_STREAM = "tickwire.redis.stream"
ATTR_SEQ = "tickwire.seq"
ATTR_TOPIC = "tickwire.topic"
ATTR_QUEUE_DELAY_US = "tickwire.queue_delay_us"
ATTR_SUBSCRIBERS = "tickwire.subscribers"
ATTR_NODE = "tickwire.node"
ATTR_SESSION = "tickwire.session"

_propagator = TraceContextTextMapPropagator()


@contextmanager
def tracing(service_name: str, enabled: bool) -> Iterator[Tracer | None]:
    """A tracer exporting OTLP as ``service_name`` (None when off); flushed at exit."""
    if not enabled:
        yield None
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    log.info("tracing: exporting OTLP as %s", service_name)
    try:
        yield provider.get_tracer(service_name)
    finally:
        provider.shutdown()


def sampled(traceparent: str | None) -> bool:
    """True for a W3C traceparent whose sampled flag is set (``00-<trace>-<span>-01``)."""
    if not traceparent or len(traceparent) != 55:
        return False
    try:
        return int(traceparent[53:], 16) & 1 == 1
    except ValueError:
        return False


def extract(traceparent: str | None, tracestate: str | None = None) -> Context:
    carrier = {"traceparent": traceparent or ""}
    if tracestate:
        carrier["tracestate"] = tracestate
    return _propagator.extract(carrier)


def traceparent_of(span: Span) -> str:
    """The traceparent that makes the next hop's span a child of ``span``."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, trace.set_span_in_context(span))
    return carrier.get("traceparent", "")


__all__ = ["Span", "SpanKind", "Tracer", "extract", "sampled", "traceparent_of", "tracing"]
