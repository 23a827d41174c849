"""Tracing set-up and the one way trace context crosses a hop.

A sampled message gets spans in ingest (``tickwire-ingest``, child of the producer's span)
and in the gateway (``tickwire-gateway``, child of ingest's), and the browser's ``report``
becomes a last span in the same trace. Unsampled messages cost no span at all: callers
check ``sampled(traceparent)`` — a string test — before touching the SDK.

Export is OTLP, over HTTP/protobuf or gRPC. Whether it is on, and the protocol, is a setting
(``BusSettings.tracing``: an OTLP endpoint is configured, the SDK is not disabled, and
``OTEL_EXPORTER_OTLP_PROTOCOL``); everything else — endpoint, sampler and ratio, headers,
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES`` — the SDK reads from the standard
``OTEL_*`` variables itself. The service names below are only defaults: an operator's
``OTEL_SERVICE_NAME`` (or ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``) wins.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
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


def resource(default_name: str) -> Resource:
    """The standard variables' resource; ``service.name`` is ``default_name`` only when
    neither ``OTEL_SERVICE_NAME`` nor ``OTEL_RESOURCE_ATTRIBUTES`` names the service
    (``Resource.create(attributes)`` would let ours override theirs)."""
    named = OTELResourceDetector().detect().attributes.get(SERVICE_NAME)
    return Resource.create({} if named else {SERVICE_NAME: default_name})


def exporter(protocol: str) -> SpanExporter:
    """The OTLP span exporter for ``protocol`` (``http/protobuf`` or ``grpc``)."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter()


@contextmanager
def tracing(service_name: str, protocol: str) -> Iterator[Tracer | None]:
    """A tracer exporting OTLP over ``protocol`` ("" when off: None), its service named
    ``service_name`` unless the standard variables name it; flushed at exit."""
    if not protocol:
        yield None
        return
    provider = TracerProvider(resource=resource(service_name))
    provider.add_span_processor(BatchSpanProcessor(exporter(protocol)))
    log.info("tracing: exporting OTLP (%s) as %s", protocol, provider.resource.attributes[SERVICE_NAME])
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


__all__ = ["Span", "SpanKind", "Tracer", "exporter", "extract", "resource", "sampled", "traceparent_of", "tracing"]
