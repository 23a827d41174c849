"""Real ingest and gateway processes configured by the standard ``OTEL_*`` variables only:
one exports OTLP/HTTP, the other OTLP/gRPC, and the service names and resource
attributes are the operator's where given."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from tickwire_client import TickwireClient

from tests.conftest import Backend
from tests.otlp import OtlpGrpcReceiver, OtlpReceiver
from tests.stack import Services
from tests.waiting import eventually
from tickwire.producer import add_entry

pytestmark = pytest.mark.slow

SAMPLED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_protocol_service_name_and_resource_come_from_otel_variables(
    backend: Backend, services: Services
) -> None:
    """1. ingest exports over http/protobuf with OTEL_RESOURCE_ATTRIBUTES (no service.name);
    2. the gateway over grpc with OTEL_SERVICE_NAME, which beats service.name in
    OTEL_RESOURCE_ATTRIBUTES; 3. one sampled entry goes through to a client; 4. the HTTP
    receiver holds ingest's span as tickwire-ingest with the attributes, the gRPC receiver
    the gateway's span as the operator's name."""
    async with OtlpReceiver() as http, OtlpGrpcReceiver() as grpc:
        fast = {"OTEL_BSP_SCHEDULE_DELAY": "100"}
        services.ingest(**fast, OTEL_EXPORTER_OTLP_ENDPOINT=http.endpoint,
                        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=staging")
        gateway = services.gateway(**fast, OTEL_EXPORTER_OTLP_ENDPOINT=grpc.endpoint,
                                   OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTEL_SERVICE_NAME="edge-gateway",
                                   OTEL_RESOURCE_ATTRIBUTES="service.name=overridden,deployment.environment=staging")
        await gateway.ready()
        async with (
            aioredis.from_url(backend.redis_url) as redis,
            TickwireClient([gateway.ws_url], ["ticks.*"]) as client,
        ):
            await client.subscribed.wait()
            await add_entry(redis, "ticks", {"n": 1}, symbol="AAPL", trace={"traceparent": SAMPLED})
            assert (await client.next(20)).trace is not None
            trace_id = SAMPLED.split("-")[1]
            await eventually(lambda: bool(http.trace(trace_id) and grpc.trace(trace_id)),
                             within=20, what="a span on each receiver")
    (ingest,) = http.trace(trace_id)
    assert ingest.service == "tickwire-ingest"
    assert ingest.resource["deployment.environment"] == "staging"
    (deliver,) = [s for s in grpc.trace(trace_id) if s.name.startswith("deliver")]
    assert deliver.service == "edge-gateway" and deliver.name == "deliver ticks.AAPL"
    assert deliver.resource["deployment.environment"] == "staging"
    assert deliver.parent_id == ingest.span_id
