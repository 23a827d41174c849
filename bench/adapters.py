"""The Python load client's protocol adapters: one per system, each connects, subscribes and counts every message.

Per message the work is one ``orjson.loads`` of the frame (measured: cheaper in Python than
any partial scan, as orjson is C), the latency ``now − ts`` added to a 50 µs-bucket
histogram and a counter: clients must not be the bottleneck. One adapter per system speaks
its protocol: Tickwire v1, the FastAPI baseline's JSON, Engine.IO v4/Socket.IO v5 over the
``websocket`` transport, and the NATS text protocol over WebSocket.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import connect

from services.hops import now_us

BUCKET_US = 50
OPEN_TIMEOUT = 30.0


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
