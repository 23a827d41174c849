"""The bench's Python load client process: many WebSocket connections each, minimal work per message.

    python -m bench.clients      (configured by one JSON line on stdin)

A process opens its share of the connections (at most ``concurrency`` handshakes in
flight), reports ``ready`` with the handshake times, then talks with the runner by lines:
``go <t0_us>`` starts counting (messages with origin ``ts`` < t0 are ignored, so a snapshot
or an earlier run never counts), ``stop`` ends it with one ``result`` line. Meanwhile it
writes ``progress`` lines so the runner sees when the drain is over. The connections speak
each system's protocol through bench/adapters.py; the result carries the process's own CPU
time so the runner can say when a client was the bottleneck.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake

from bench.adapters import ADAPTERS, Conn, Counter
from bench.lines import go_times, open_stdin, say
from bench.processes import raise_nofile
from services.hops import now_us


def cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Fleet:
    """All connections of this process, each kept alive (and failed over) until stopped."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.adapter = ADAPTERS[config["kind"]]
        self.counter = Counter()
        urls: list[str] = config["urls"]
        self.conns = [Conn(i, topics, urls) for i, topics in enumerate(config["topics"])]
        self.failover = bool(config.get("failover", False))
        self.handshake_ms: list[float] = []
        self.failed = 0
        self.stopping = False
        self._gate = asyncio.Semaphore(int(config.get("concurrency", 200)))
        self._all_ready = asyncio.Event()
        self._pending = len(self.conns)

    def _one_ready(self, started: float) -> None:
        self.handshake_ms.append((time.perf_counter() - started) * 1000)
        self._pending -= 1
        if self._pending == 0:
            self._all_ready.set()

    async def _keep(self, conn: Conn) -> None:
        attempt = 0
        first = True
        while not self.stopping:
            url = conn.urls[(conn.reconnects + (conn.index if not self.failover else 0)) % len(conn.urls)]
            done = False
            if first:
                await self._gate.acquire()
            started = time.perf_counter()

            def ready(first: bool = first, started: float = started) -> None:
                nonlocal done
                done = True
                if first:
                    # The gate bounds handshakes in flight, not connections: free it once subscribed.
                    self._gate.release()
                    self._one_ready(started)

            try:
                await self._connect(conn, url, ready)
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError, ConnectionError) as exc:
                if first and not done:
                    self._gate.release()
                    self.failed += 1
                    self._pending -= 1
                    if self._pending == 0:
                        self._all_ready.set()
                    sys.stderr.write(f"connect failed: {type(exc).__name__} {exc}\n")
                    return
            first = False
            if self.stopping or not self.failover:
                return
            # Failover: as TickwireClient does, next URL after a short jittered backoff.
            if conn.disconnected_at is None or conn.resumed_at is not None:
                conn.disconnected_at, conn.resumed_at = now_us(), None
            conn.reconnects += 1
            attempt += 1
            await asyncio.sleep(random.uniform(0, min(2.0, 0.05 * 2 ** min(attempt, 6))))

    async def _connect(self, conn: Conn, url: str, ready: Callable[[], None]) -> None:
        await self.adapter(conn, url, self.counter, ready)

    async def run(self, say: Callable[[dict[str, Any]], None], commands: asyncio.StreamReader) -> None:
        started = time.perf_counter()
        tasks = [asyncio.create_task(self._keep(c)) for c in self.conns]
        await self._all_ready.wait()
        hs = sorted(self.handshake_ms)
        say({"event": "ready", "connected": len(hs), "failed": self.failed,
             "connect_seconds": time.perf_counter() - started,
             "handshake_ms_p50": hs[len(hs) // 2] if hs else None,
             "handshake_ms_p99": hs[min(len(hs) - 1, int(len(hs) * 0.99))] if hs else None})
        cpu0, wall0 = cpu_self(), time.perf_counter()
        progress = asyncio.create_task(self._progress(say))
        try:
            async for t0 in go_times(commands):
                self.counter.t0 = t0
                cpu0, wall0 = cpu_self(), time.perf_counter()
        finally:
            progress.cancel()
            self.stopping = True
        cpu, wall = cpu_self() - cpu0, time.perf_counter() - wall0
        resumed = [c.resumed_at for c in self.conns if c.resumed_at is not None]
        say({"event": "result", "received": self.counter.received, "hist": self.counter.hist,
             "cpu_seconds": cpu, "wall_seconds": wall, "connections": len(self.conns) - self.failed,
             "gaps": sum(c.gaps for c in self.conns), "reconnected": len(resumed),
             "disconnected": sum(1 for c in self.conns if c.disconnected_at is not None),
             "last_resumed_us": max(resumed) if resumed else None,
             "first_disconnect_us": min((c.disconnected_at for c in self.conns if c.disconnected_at), default=None)})
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _progress(self, say: Callable[[dict[str, Any]], None]) -> None:
        while True:
            await asyncio.sleep(0.25)
            resumed = sum(1 for c in self.conns if c.resumed_at is not None)
            say({"event": "progress", "received": self.counter.received, "resumed": resumed})


async def _main() -> None:
    config, commands = await open_stdin()
    await Fleet(config).run(say, commands)


def main() -> None:
    raise_nofile()
    import uvloop

    uvloop.run(_main())


if __name__ == "__main__":
    main()
