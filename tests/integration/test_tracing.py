"""One trace per sampled message, producer → ingest → gateway → client, and metrics.

Real ingest and gateway processes export OTLP to a receiver the test runs (the protocol
Jaeger accepts); the test plays the producer (its own span) and the client (a real
WebSocket client that reports its receipts).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis.asyncio as aioredis
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families
from tickwire_client import TickwireClient

from tests.conftest import Backend
from tests.otlp import OtlpReceiver, ReceivedSpan
from tests.stack import Services
from tests.waiting import eventually
from tickwire.producer import add_entry

pytestmark = pytest.mark.slow

UNSAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


def by_name(spans: list[ReceivedSpan], prefix: str) -> ReceivedSpan:
    found = [s for s in spans if s.name.startswith(prefix)]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


async def test_sampled_message_is_one_trace_across_every_hop(backend: Backend, services: Services) -> None:
    """1. ingest and a gateway export OTLP to the test's receiver; 2. unsampled entries
    (flag 00, and none at all) go through; 3. the test's producer span XADDs one sampled
    entry; 4. a client receives it with `trace` and `hops` and reports its receipt;
    5. one trace holds producer → ingest → gateway → browser, each the parent of the next,
    in hop order; no span exists for any unsampled entry."""
    async with OtlpReceiver() as receiver:
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        services.ingest(**otel)
        gateway = services.gateway(**otel)
        await gateway.ready()
        provider = TracerProvider(resource=Resource.create({"service.name": "test-producer"}))
        # Batch: a simple processor would export from this event loop, to the receiver on it.
        exporter = OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces")
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=100))
        tracer = provider.get_tracer("test")
        async with (
            aioredis.from_url(backend.redis_url) as redis,
            TickwireClient([gateway.ws_url], ["ticks.*"]) as client,
        ):
            await client.subscribed.wait()
            for i in range(10):
                await add_entry(redis, "ticks", {"n": i}, symbol="AAPL", trace={"traceparent": UNSAMPLED})
                await add_entry(redis, "ticks", {"n": i}, symbol="AAPL")
            with tracer.start_as_current_span("produce md:ticks", kind=SpanKind.PRODUCER) as producer:
                await add_entry(redis, "ticks", {"n": "traced"}, symbol="AAPL")
            trace_id = format(producer.get_span_context().trace_id, "032x")
            got = [await client.next(20) for _ in range(21)]
            traced = got[-1]
            assert traced.data == {"n": "traced"} and traced.trace is not None and traced.hops is not None
            assert all(m.trace is None for m in got[:-1])
            await eventually(lambda: len(receiver.trace(trace_id)) >= 4, within=20, what="four spans of the trace")
        provider.shutdown()
    spans = receiver.trace(trace_id)
    produce = by_name(spans, "produce")
    ingest = by_name(spans, "ingest md:ticks")
    deliver = by_name(spans, "deliver ticks.AAPL")
    browser = by_name(spans, "browser receive ticks.AAPL")
    assert (ingest.service, deliver.service, browser.service) == ("tickwire-ingest",) + ("tickwire-gateway",) * 2
    assert ingest.parent_id == produce.span_id
    assert deliver.parent_id == ingest.span_id
    assert browser.parent_id == deliver.span_id
    # Ingest's span ends at the publish ack, which may come after the gateway has the message.
    assert produce.start_ns <= ingest.start_ns <= deliver.start_ns <= deliver.end_ns <= browser.start_ns
    assert ingest.start_ns <= ingest.end_ns and browser.start_ns <= browser.end_ns
    assert browser.end_ns - browser.start_ns < 1_000_000_000  # the client took it within a second
    for span in (ingest, deliver):
        assert span.attributes["messaging.destination.name"] == "md.ticks.AAPL"
    assert ingest.attributes["tickwire.redis.stream"] == "md:ticks"
    assert deliver.attributes["tickwire.subscribers"] == 1
    assert browser.attributes["tickwire.seq"] == traced.seq
    assert traced.trace.split("-")[2] == deliver.span_id  # the client's trace names the gateway span
    others = {s.trace_id for s in receiver.spans if s.service.startswith("tickwire")} - {trace_id}
    assert others == set(), "unsampled entries produced spans"


async def test_metrics_count_what_was_sent(backend: Backend, services: Services) -> None:
    """1. a gateway and two clients on ticks.*; 2. 30 entries; 3. /metrics parses with
    prometheus_client and its counters match: 30 messages, 60 deliveries, 2 connections,
    30 end-to-end hop samples."""
    services.ingest()
    gateway = services.gateway()
    await gateway.ready()
    async with (
        aioredis.from_url(backend.redis_url) as redis,
        TickwireClient([gateway.ws_url], ["ticks.*"]) as a,
        TickwireClient([gateway.ws_url], ["ticks.*"]) as b,
        httpx.AsyncClient(base_url=gateway.url) as http,
    ):
        await asyncio.gather(a.subscribed.wait(), b.subscribed.wait())
        for i in range(30):
            await add_entry(redis, "ticks", {"n": i}, symbol=f"S{i % 3}")
        for client in (a, b):
            for _ in range(30):
                await client.next(20)
        text = (await http.get("/metrics")).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("tickwire_gateway_messages_total", ())] == 30
    assert samples[("tickwire_gateway_deliveries_total", ())] == 60
    assert samples[("tickwire_connections", ())] == 2
    assert samples[("tickwire_hop_latency_seconds_count", (("hop", "end_to_gateway"),))] == 30
    assert samples[("tickwire_consumer_lag_messages", ())] == 0
