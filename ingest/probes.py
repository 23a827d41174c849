"""ingest's HTTP surface: ``/healthz``, ``/readyz`` and ``/metrics`` (Prometheus text).

ingest has no web framework, and three read-only GET endpoints do not need one: a minimal
HTTP/1.1 responder on ``asyncio.start_server`` answers one request per connection and
closes it. Metrics are read from ``IngestStats`` at scrape time by a collector on a
registry of the replica's own (tests run several replicas in one process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ingest.stats import IngestStats

log = logging.getLogger(__name__)

PREFIX = "tickwire_ingest_"
REQUEST_TIMEOUT = 5.0
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class IngestCollector(Collector):
    """Exports one replica's ``IngestStats``; ``held`` and ``ready`` are read at scrape time."""

    def __init__(self, stats: IngestStats, held: Callable[[], int], ready: Callable[[], bool]) -> None:
        self.stats = stats
        self.held = held
        self.ready = ready

    def collect(self) -> Iterable[Metric]:
        s = self.stats
        counters = [
            ("published", "Entries newly stored in JetStream", s.published),
            ("jetstream_duplicates", "Re-publishes JetStream dropped by Nats-Msg-Id", s.jetstream_duplicates),
            ("duplicates_skipped", "Re-deliveries at or below the high-water mark, not published",
             s.duplicates_skipped),
            ("dead_lettered", "Entries moved to the dead-letter stream", s.dead_lettered),
            ("trimmed", "Entries trimmed from Redis before ingest read them", s.trimmed),
            ("gaps", "Gap notices published", s.gaps),
            ("publish_retries", "Publish attempts retried (NATS away, ack timeout, buffer full)", s.publish_retries),
        ]
        for name, doc, value in counters:
            yield CounterMetricFamily(PREFIX + name, doc, value=value)
        yield GaugeMetricFamily(PREFIX + "streams_held", "Streams this replica holds the lease of", value=self.held())
        yield GaugeMetricFamily(PREFIX + "ready", "1 when Redis and NATS are connected and the stream exists",
                                value=1 if self.ready() else 0)
        lag = GaugeMetricFamily(PREFIX + "lag", "Entries of a held stream not yet handled (XINFO GROUPS lag + pending)",
                                labels=["stream"])
        for stream, value in sorted(s.lag.items()):
            lag.add_metric([stream], value)
        yield lag


class Probes:
    """Answers the three endpoints from a readiness check and a metrics registry."""

    def __init__(self, ready: Callable[[], bool], registry: CollectorRegistry) -> None:
        self.ready = ready
        self.registry = registry

    def respond(self, method: str, path: str) -> tuple[int, bytes, str]:
        if method not in ("GET", "HEAD"):
            return 405, b"method not allowed\n", "text/plain"
        if path == "/healthz":
            return 200, b"ok\n", "text/plain"
        if path == "/readyz":
            return (200, b"ready\n", "text/plain") if self.ready() else (503, b"not ready\n", "text/plain")
        if path == "/metrics":
            return 200, generate_latest(self.registry), CONTENT_TYPE_LATEST
        return 404, b"not found\n", "text/plain"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    head = await reader.readuntil(b"\r\n\r\n")  # bounded by the reader's 64 KiB limit
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(parts) != 3:
                status, body, ctype = 400, b"bad request\n", "text/plain"
            else:
                status, body, ctype = self.respond(parts[0], parts[1].split("?", 1)[0])
            reason = _REASONS.get(status, "Bad Request")
            header = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                      f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
            writer.write(header if parts[:1] == ["HEAD"] else header + body)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def serve_probes(probes: Probes, host: str, port: int) -> AsyncIterator[asyncio.Server]:
    """Listen on ``host:port`` for the block's duration."""
    server = await asyncio.start_server(probes.handle, host, port)
    log.info("ingest: /healthz /readyz /metrics on http://%s:%d", host, port)
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()
