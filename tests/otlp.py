"""Real OTLP trace receivers for tests: decode exports with ``opentelemetry-proto``.

``OtlpReceiver`` speaks OTLP/HTTP (POST ``/v1/traces``, protobuf body), ``OtlpGrpcReceiver``
OTLP/gRPC (``TraceService/Export`` on grpcio's asyncio server): the two protocols Jaeger
accepts, so what the services export here is what Jaeger would show.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterable
from dataclasses import dataclass, field

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from tickwire.localservers import free_port


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, object]
    resource: dict[str, object] = field(default_factory=dict)


def _values(attributes: Iterable[KeyValue]) -> dict[str, object]:
    return {a.key: getattr(a.value, a.value.WhichOneof("value") or "string_value") for a in attributes}


def decode(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    """The spans of one export request, each with its resource's attributes."""
    spans = []
    for resource_spans in request.resource_spans:
        resource = _values(resource_spans.resource.attributes)
        for scope in resource_spans.scope_spans:
            for span in scope.spans:
                spans.append(ReceivedSpan(
                    str(resource.get("service.name", "")), span.name, span.trace_id.hex(), span.span_id.hex(),
                    span.parent_span_id.hex(), span.kind, span.start_time_unix_nano, span.end_time_unix_nano,
                    _values(span.attributes), resource))
    return spans


@dataclass
class OtlpReceiver:
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"  # 0.0.0.0 in a container (tests/deploy/otlp_service.py)
    spans: list[ReceivedSpan] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> OtlpReceiver:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()  # the handler reading from it ends with IncompleteReadError
        await self._server.wait_closed()

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.trace_id == trace_id]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = dict(line.split(":", 1) for line in head.decode("latin-1").split("\r\n")[1:] if ":" in line)
                headers = {k.strip().lower(): v.strip() for k, v in headers.items()}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                self._decode(body)
                reply = ExportTraceServiceResponse().SerializeToString()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n"
                    + f"Content-Length: {len(reply)}\r\n\r\n".encode()
                    + reply
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _decode(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.spans.extend(decode(request))


@dataclass
class OtlpGrpcReceiver:
    """OTLP/gRPC on a free port (plaintext, as an ``http://`` endpoint tells the exporter)."""

    port: int = field(default_factory=free_port)
    spans: list[ReceivedSpan] = field(default_factory=list)
    _server: grpc.aio.Server | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.trace_id == trace_id]

    async def __aenter__(self) -> OtlpGrpcReceiver:
        self._server = grpc.aio.server()
        receiver = self

        class Service(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
            async def Export(self, request: ExportTraceServiceRequest, context: object) -> ExportTraceServiceResponse:
                receiver.spans.extend(decode(request))
                return ExportTraceServiceResponse()

        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), self._server)
        self._server.add_insecure_port(f"127.0.0.1:{self.port}")
        await self._server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        await self._server.stop(grace=None)
