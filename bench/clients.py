"""The bench's client processes: many WebSocket connections each, minimal work per message.

    python -m bench.clients      (configured by one JSON line on stdin)

A process opens its share of the connections (at most ``concurrency`` handshakes in
flight), reports ``ready`` with the handshake times, then talks with the runner by lines:
``go <t0_us>`` starts counting (messages with origin ``ts`` < t0 are ignored, so a snapshot
or an earlier run never counts), ``stop`` ends it with one ``result`` line. Meanwhile it
writes ``progress`` lines so the runner sees when the drain is over.

Per message the work is one ``orjson.loads`` of the frame (measured: cheaper in Python than
any partial scan, as orjson is C), the latency ``now − ts`` added to a 50 µs-bucket
histogram and a counter: clients must not be the bottleneck, and the result carries the
process's own CPU time so the runner can say when one was. One adapter per system speaks
its protocol: Tickwire v1, the FastAPI baseline's JSON, Engine.IO v4/Socket.IO v5 over the
``websocket`` transport, and the NATS text protocol over WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from bench.processes import raise_nofile

BUCKET_US = 50
OPEN_TIMEOUT = 30.0


def now_us() -> int:
    return time.time_ns() // 1000


def cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Counter:
    """What every connection of a process adds to (one process: no locks needed)."""

    t0: int | None = None  # origin ts from which messages count
    received: int = 0
    hist: dict[int, int] = field(default_factory=dict)

    def add(self, ts: int) -> None:
        t0 = self.t0
        if t0 is None or ts < t0:
            return
        self.received += 1
        bucket = (now_us() - ts) // BUCKET_US
        self.hist[bucket] = self.hist.get(bucket, 0) + 1


@dataclass
class Conn:
    """One logical client: its topics and, for failover, where it is in the stream."""

    index: int
    topics: list[str] | None  # None: everything
    urls: list[str]
    last_seq: int = 0
    gaps: int = 0
    disconnected_at: int | None = None
    resumed_at: int | None = None  # first message after the last reconnect
    reconnects: int = 0


def _ws(url: str, **extra: Any) -> Any:
    # Compression off and no client pings: the least work per frame on this side.
    return connect(url, compression=None, max_size=None, ping_interval=None, open_timeout=OPEN_TIMEOUT,
                   close_timeout=1, **extra)


# ---- adapters: handshake → subscribe → receive -------------------------------------------


async def _tickwire(conn: Conn, url: str, counter: Counter, ready: Callable[[], None]) -> None:
    async with _ws(url, subprotocols=["tickwire.v1"]) as ws:
        await ws.recv()  # welcome
        frame: dict[str, Any] = {"type": "subscribe", "topics": conn.topics or ["ticks.*"]}
        if conn.last_seq:
            frame["since"] = conn.last_seq
        await ws.send(orjson.dumps(frame).decode())
        ready()
        add = counter.add
        async for raw in ws:
            f = orjson.loads(raw)
            kind = f.get("type")
            msgs = f["msgs"] if kind == "batch" else (f,) if kind == "msg" else ()
            for m in msgs:
                seq = m["seq"]
                if seq <= conn.last_seq:
                    continue  # a duplicate: an application never sees it
                if conn.disconnected_at is not None and conn.resumed_at is None:
                    conn.resumed_at = now_us()
                if conn.topics is None and conn.last_seq and seq != conn.last_seq + 1:
                    conn.gaps += seq - conn.last_seq - 1
                conn.last_seq = seq
                add(m["ts"])


async def _fastapi(conn: Conn, url: str, counter: Counter, ready: Callable[[], None]) -> None:
    async with _ws(url) as ws:
        await ws.send(orjson.dumps({"type": "subscribe", "topics": conn.topics or ["*"]}).decode())
        ready()
        add = counter.add
        async for raw in ws:
            add(orjson.loads(raw)["ts"])


async def _socketio(conn: Conn, url: str, counter: Counter, ready: Callable[[], None]) -> None:
    # Engine.IO v4 over the websocket transport directly (no polling upgrade): "0{open}",
    # then Socket.IO CONNECT "40" to namespace "/", events as '42["name",data]', and the
    # server's ping "2" answered with pong "3".
    async with _ws(url.rstrip("/") + "/socket.io/?EIO=4&transport=websocket") as ws:
        opened = await ws.recv()
        if not str(opened).startswith("0"):
            raise ConnectionError(f"engine.io: expected open, got {opened!r}")
        await ws.send("40")
        while not str(await ws.recv()).startswith("40"):
            pass
        await ws.send("42" + orjson.dumps(["subscribe", {"topics": conn.topics or ["*"]}]).decode())
        ready()
        add = counter.add
        async for raw in ws:
            if raw[:2] == "42":
                add(orjson.loads(raw[2:])[1]["ts"])
            elif raw == "2":
                await ws.send("3")


_TS_HEADER = b"Tw-Ts: "


async def _natsws(conn: Conn, url: str, counter: Counter, ready: Callable[[], None]) -> None:
    # NATS client protocol over WebSocket: INFO, then CONNECT/SUB/PING; messages arrive as
    # HMSG (JetStream-stored messages keep their headers) and may be split across frames.
    async with _ws(url) as ws:
        buf = bytearray()
        subs = [f"md.ticks.{t.split('.', 1)[1]}" for t in conn.topics] if conn.topics else ["md.ticks.>"]
        out = b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true,"protocol":1}\r\n'
        out += b"".join(f"SUB {s} {i + 1}\r\n".encode() for i, s in enumerate(subs)) + b"PING\r\n"
        await ws.send(out)
        ready()
        add = counter.add
        async for raw in ws:
            buf += raw if isinstance(raw, bytes) else raw.encode()
            pos = 0
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                line = bytes(buf[pos:eol])
                if line[:4] == b"HMSG" or line[:3] == b"MSG":
                    parts = line.split()
                    total = int(parts[-1])
                    end = eol + 2 + total + 2
                    if len(buf) < end:
                        break  # the payload is in a later frame
                    if line[:4] == b"HMSG":
                        hlen = int(parts[-2])
                        headers = bytes(buf[eol + 2:eol + 2 + hlen])
                        at = headers.find(_TS_HEADER)
                        if at >= 0:
                            add(int(headers[at + len(_TS_HEADER):headers.index(b"\r", at)]))
                    pos = end
                    continue
                if line == b"PING":
                    await ws.send(b"PONG\r\n")
                pos = eol + 2
            del buf[:pos]


ADAPTERS = {"tickwire": _tickwire, "fastapi": _fastapi, "socketio": _socketio, "natsws": _natsws}


# ---- the process -----------------------------------------------------------------------


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
            while True:
                line = (await commands.readline()).decode().strip()
                if not line or line == "stop":
                    break
                if line.startswith("go "):
                    self.counter.t0 = int(line.split()[1])
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


def _say(obj: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode() + "\n")
    sys.stdout.flush()


async def _main() -> None:
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    config = orjson.loads(await commands.readline())
    await Fleet(config).run(_say, commands)


def main() -> None:
    raise_nofile()
    import uvloop

    uvloop.run(_main())


if __name__ == "__main__":
    main()
