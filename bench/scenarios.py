"""The one-off scenarios: idle connections, failover, ingest throughput and the cost of tracing.

Each returns a JSON-able dict; the runner stores them and the report turns them into tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import redis as syncredis
from nats.aio.client import Client as NATS

from bench import processes, systems
from bench.pool import Pool, client_cpu
from bench.streaming import SYMBOLS, StreamCase, drain, produce, stream_once


async def idle(system: str, connections: int, log_dir: Path, procs: int) -> dict[str, Any]:
    """N idle connections (one subscription each) on one frontend: set-up time and memory each."""
    stack = systems.start(system, log_dir / f"{system}-idle",
                          env={"TICKWIRE_MAX_CONNECTIONS": str(connections + 1000)})
    try:
        front = stack.frontends[0]
        await asyncio.sleep(1.0)
        rss0 = front.memory_kb("VmRSS")
        topics: list[list[str] | None] = [[f"ticks.S{i % SYMBOLS:03d}"] for i in range(connections)]
        async with Pool(stack.protocol, stack.ws_urls[:1], topics, procs, concurrency=100) as pool:
            started = time.perf_counter()
            ready = await pool.wait_ready()
            elapsed = time.perf_counter() - started
            await asyncio.sleep(2.0)  # let buffers and lazily-built state settle
            rss1 = front.memory_kb("VmRSS")
            connected = sum(r["connected"] for r in ready)
        return {
            "system": system, "connections": connections, "connected": connected,
            "failed": sum(r["failed"] for r in ready), "connect_seconds": round(elapsed, 2),
            "connects_per_s": round(connected / elapsed, 1) if elapsed else None,
            "handshake_ms_p50": max((r["handshake_ms_p50"] or 0) for r in ready),
            "handshake_ms_p99": max((r["handshake_ms_p99"] or 0) for r in ready),
            "rss_before_mb": round(rss0 / 1024, 1), "rss_after_mb": round(rss1 / 1024, 1),
            "kb_per_connection": round((rss1 - rss0) / connected, 1) if connected else None,
        }
    finally:
        stack.stop()


async def failover(clients: int, rate: float, log_dir: Path, procs: int) -> dict[str, Any]:
    """``clients`` on gateway 1 (knowing gateway 2); gateway 1 killed -9 mid-stream."""
    stack = systems.start("tickwire", log_dir / "failover", gateways=2,
                          env={"TICKWIRE_MAX_CONNECTIONS": str(clients + 1000)})
    try:
        await systems.warm_up(stack)
        async with Pool("tickwire", stack.ws_urls, [None] * clients, procs, failover=True, concurrency=100) as pool:
            await pool.wait_ready()
            t0 = time.time_ns() // 1000
            await pool.go(t0)
            duration = 14.0
            producer = asyncio.create_task(produce(stack.redis_url, rate, duration))
            await asyncio.sleep(4.0)
            killed_us = time.time_ns() // 1000
            stack.frontends[0].stop(signal.SIGKILL)
            deadline = time.monotonic() + 20
            # Polled: the count arrives in the client processes' progress lines, not as an event.
            while pool.resumed < clients and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            produced = await producer
            expected = produced["sent"] * clients
            await drain(pool, expected)
            results = await pool.results()
        last = max((r["last_resumed_us"] or 0) for r in results)
        resumed = sum(r["reconnected"] for r in results)
        received = sum(r["received"] for r in results)
        return {
            "clients": clients, "rate": rate, "resumed": resumed,
            "failover_seconds": round((last - killed_us) / 1e6, 2) if last else None,
            "expected": expected, "received": received, "loss": max(0, expected - received),
            "gaps": sum(r["gaps"] for r in results), "client": client_cpu(results),
        }
    finally:
        stack.stop()


async def _stream_messages(nats_url: str) -> int:
    nc = NATS()
    await nc.connect(nats_url)
    try:
        return int((await nc.jetstream().stream_info("MD")).state.messages)
    except Exception:  # not created yet
        return 0
    finally:
        await nc.close()


async def ingest(entries: int, replicas: int, log_dir: Path, streams: int = 4) -> dict[str, Any]:
    """Pre-fill ``streams`` Redis streams, start ingest, time until MD holds every entry."""
    stack = systems.start("tickwire", log_dir / f"ingest-{replicas}", ingest=0, frontend=False)
    try:
        r = syncredis.Redis.from_url(stack.redis_url)
        per = entries // streams
        payload = orjson.dumps({"bid": 101.25, "ask": 101.26, "bid_size": 300, "ask_size": 200, "venue": "XNAS"})
        for s in range(streams):
            for start in range(0, per, 2000):
                pipe = r.pipeline(transaction=False)
                for i in range(start, min(per, start + 2000)):
                    pipe.xadd(f"md:bench{s}", {"symbol": f"S{i % SYMBOLS:03d}", "data": payload, "ts": "0"})
                pipe.execute()
        r.close()
        total = per * streams
        env = {"REDIS_URL": stack.redis_url, "NATS_URL": stack.nats_url, "TICKWIRE_LOG_LEVEL": "WARNING",
               "TICKWIRE_LEASE_TTL": "2"}
        started = time.monotonic()
        for i in range(replicas):
            child = processes.tickwire(f"ingest-{i + 1}", ["ingest"], stack.log_dir,
                                       {**env, "TICKWIRE_REPLICA": f"ingest-{i + 1}"})
            stack.servers.append(child.start())
        first = done = None
        deadline = started + 300
        while time.monotonic() < deadline:
            n = await _stream_messages(stack.nats_url)
            now = time.monotonic()
            if n and first is None:
                first = now
            if n >= total:
                done = now
                break
            await asyncio.sleep(0.1)
        cpu = {c.name: round(c.cpu(), 2) for c in stack.servers}
        span = (done - first) if done and first else None
        return {
            "replicas": replicas, "entries": total, "streams": streams,
            "seconds_from_start": round(done - started, 2) if done else None,
            "seconds_from_first": round(span, 2) if span else None,
            "entries_per_s": round(total / span) if span else None, "cpu": cpu,
            "ingest_cpu_seconds": round(sum(v for k, v in cpu.items() if k.startswith("ingest")), 2),
        }
    finally:
        stack.stop()


@contextlib.asynccontextmanager
async def otlp_sink() -> AsyncIterator[dict[str, int]]:
    """A dummy OTLP/HTTP endpoint on 127.0.0.1: answers 200 and counts requests and bytes."""
    counts = {"requests": 0, "bytes": 0, "port": 0}

    open_writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        open_writers.add(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                counts["requests"] += 1
                counts["bytes"] += len(body)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        open_writers.discard(writer)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    counts["port"] = server.sockets[0].getsockname()[1]
    try:
        yield counts
    finally:
        server.close()
        # Exporters keep their connection open: close them so each handler ends on EOF.
        for writer in list(open_writers):
            writer.close()
        await asyncio.sleep(0.1)
        await server.wait_closed()


async def tracing(rate: float, clients: int, duration: float, log_dir: Path, procs: int,
                  client: str = "node") -> list[dict[str, Any]]:
    """Broadcast without tracing, then with 1% parent-based sampling exporting to a dummy sink."""
    rows = []
    async with otlp_sink() as sink:
        for traced in (False, True):
            env = {}
            if traced:
                env = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01",
                       "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink['port']}",
                       "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
            stack = systems.start("tickwire", log_dir / f"tracing-{traced}", env=env)
            try:
                await systems.warm_up(stack)
                before = sink["requests"]
                row = await stream_once(stack, StreamCase("tickwire", rate, clients, duration, procs=procs,
                                                          trace_ratio=0.01 if traced else 0.0, client=client))
                await asyncio.sleep(6.0 if traced else 0)  # BatchSpanProcessor exports every 5 s
                row["tracing"] = traced
                row["otlp_requests"] = sink["requests"] - before
                rows.append(row)
            finally:
                stack.stop()
    return rows
