"""TCP connections by client address, below HTTP: the request-head deadline and the caps.

uvicorn's h11 protocol arms its only timer (keep-alive) after a response, so a client that
opens sockets and never finishes a request head holds each one forever (slowloris), and one
address may open as many as the process has file descriptors. Here:

* a connection must complete each HTTP request head (a WebSocket upgrade's included) within
  ``handshake_timeout`` seconds of its first byte (of the connection, for the first head).
  If it has sent part of one it is answered ``408 Request Timeout`` (``Connection: close``)
  and closed, as nginx and uvicorn's users expect; if it has sent nothing it is only closed;
* one address may hold at most ``max_handshakes_per_ip`` connections whose first head is
  not complete yet; the next is closed at once;
* optionally (``max_connections_per_ip``, 0 = no cap) one address may hold at most that many
  open connections of any kind. Behind a proxy every client has the proxy's address, so it
  is off by default (docs/security.md);
* the whole process holds at most ``max_handshakes`` connections whose first head is not
  complete, whatever their addresses: an attacker with many addresses escapes the caps
  above. Past it the **oldest** pending connection is closed to make room, not the newest
  refused. Refusing the newest would hand the process to a distributed slowloris: it needs
  only ``max_handshakes`` sockets per ``handshake_timeout`` (410/s at the defaults) to keep
  every honest client out. An honest client sends its head one round trip after it
  connects, so it is the youngest pending connection almost always; to evict it an attacker
  must open ``max_handshakes`` connections within that round trip (tens of thousands a
  second), and what goes first is what has waited longest, most likely a slowloris socket.
  FreeBSD's SYN cache sheds the same way (its oldest entry, when a bucket is full). An
  evicted connection is closed without an answer: it is shed under load, not late.

An address here is an IPv4 address, or an IPv6 address's /64 prefix: any IPv6 host may use
every address of its /64 (SLAAC privacy addresses), so per-address caps keyed by the full
address would cap nothing. IPv4-mapped IPv6 addresses (a dual-stack socket) count as IPv4.

Each refusal is counted in ``tickwire_gateway_connections_refused_total{reason}`` (the
``Refusal`` values; gateway.telemetry) and logged once per address and reason per
``LOG_INTERVAL``, not once per connection: a flood must not flood the log. The two reasons
a distributed attack produces from every address, the process-wide cap and the timeout, are
logged once per interval for the whole process, naming the address of the first. The caps
are per process (per worker).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import h11
import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from gateway.telemetry import Refusals

log = logging.getLogger(__name__)

LOG_INTERVAL = 60.0  # seconds between two log lines about the same address and reason
PRUNE_AT = 1024  # notice entries kept before the stale ones are dropped
IPV6_PREFIX = 64  # the block one IPv6 host may draw addresses from
_TIMEOUT_BODY = b"request head not complete in time\n"
REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


class Refusal(StrEnum):
    """Why a connection was closed below HTTP; the value is the metric's ``reason`` label."""

    HANDSHAKES_PER_IP = "handshakes_per_ip"
    CONNECTIONS_PER_IP = "connections_per_ip"
    HANDSHAKES = "handshakes"
    TIMEOUT = "head_timeout"

    @property
    def text(self) -> str:
        return _TEXT[self]

    @property
    def per_address(self) -> bool:
        return self in (Refusal.HANDSHAKES_PER_IP, Refusal.CONNECTIONS_PER_IP)


_TEXT = {
    Refusal.HANDSHAKES_PER_IP: "too many incomplete request heads from this address",
    Refusal.CONNECTIONS_PER_IP: "too many connections from this address",
    Refusal.HANDSHAKES: "too many incomplete request heads in this process: the oldest is shed",
    Refusal.TIMEOUT: "request head not complete in time",
}


@dataclass(frozen=True)
class AdmissionLimits:
    handshake_timeout: float
    max_handshakes_per_ip: int
    max_connections_per_ip: int  # 0: no cap
    max_handshakes: int = 4096  # over all addresses


def address_key(host: str) -> str:
    """What the per-address caps count by: the IPv4 address, or the IPv6 address's /64."""
    if ":" not in host:
        return host  # IPv4 (or "local"): as it is, no parsing on the common path
    try:
        ip = ipaddress.IPv6Address(host)
    except ValueError:
        return host
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(ip) >> (128 - IPV6_PREFIX) << (128 - IPV6_PREFIX), IPV6_PREFIX)))


class Notices:
    """One log line per (address, refusal) per interval, counting the ones it stands for."""

    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self.interval, self.clock = interval, clock
        self._seen: dict[tuple[str, Refusal], tuple[float, int]] = {}

    def note(self, address: str, refusal: Refusal) -> None:
        now, key = self.clock(), (address if refusal.per_address else "", refusal)
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.interval:
            self._seen[key] = (seen[0], seen[1] + 1)
            return
        more = f" (and {seen[1]} more since the last line)" if seen is not None and seen[1] else ""
        log.warning("connection from %s closed: %s%s", address, refusal.text, more)
        self._seen[key] = (now, 0)
        if len(self._seen) > PRUNE_AT:
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.interval}


class ConnectionGuard:
    """One process's open connections counted by client address, each transport once."""

    def __init__(self, limits: AdmissionLimits, refusals: Refusals,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.refusals = refusals
        refusals.declare(Refusal)  # every reason exported from the start, at 0
        self.notices = Notices(LOG_INTERVAL, clock)
        self._heads: Counter[str] = Counter()  # connections whose first head is incomplete
        self._open: Counter[str] = Counter()
        self._held: dict[asyncio.BaseTransport, str] = {}  # → address key
        # Connections whose first head is incomplete, oldest first (the one shed at the cap).
        self._pending: OrderedDict[asyncio.BaseTransport, None] = OrderedDict()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def admit(self, transport: asyncio.BaseTransport, address: str) -> bool:
        """Count a new connection in, or count and log why it may not be (the caller closes it).

        At the process-wide cap the oldest pending connection is closed here instead."""
        limits = self.limits
        if self._heads[address] >= limits.max_handshakes_per_ip:
            self.refused(address, Refusal.HANDSHAKES_PER_IP)
            return False
        if limits.max_connections_per_ip and self._open[address] >= limits.max_connections_per_ip:
            self.refused(address, Refusal.CONNECTIONS_PER_IP)
            return False
        while len(self._pending) >= limits.max_handshakes:
            oldest = next(iter(self._pending))
            self.head_complete(oldest)  # off the counts now: its connection_lost comes later
            self.refused(self._held[oldest], Refusal.HANDSHAKES)
            oldest.close()
        self._held[transport] = address
        self._pending[transport] = None
        self._heads[address] += 1
        self._open[address] += 1
        return True

    def refused(self, address: str, refusal: Refusal) -> None:
        self.refusals.count(refusal)
        self.notices.note(address, refusal)

    def head_complete(self, transport: asyncio.BaseTransport) -> None:
        if self._pending.pop(transport, False) is None:
            _decrement(self._heads, self._held[transport])

    def lost(self, transport: asyncio.BaseTransport) -> None:
        """The connection is gone (idempotent: both protocols of an upgraded one call it)."""
        self.head_complete(transport)
        address = self._held.pop(transport, None)
        if address is not None:
            _decrement(self._open, address)


def _decrement(counts: Counter[str], address: str) -> None:
    counts[address] -= 1
    if counts[address] <= 0:  # an address that has gone away leaves nothing behind
        del counts[address]


class GatewayConfig(uvicorn.Config):
    """uvicorn's Config, carrying the one ConnectionGuard its protocol instances share."""

    def __init__(self, app: Any, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.guard = guard


def guard_of(config: Config) -> ConnectionGuard:
    assert isinstance(config, GatewayConfig), "the gateway's protocols need gateway.server.config_for"
    return config.guard


class GuardedHttpProtocol(H11Protocol):
    """uvicorn's h11 protocol with the guard's admission and a deadline on every request head."""

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.guard = guard_of(config)
        self.head_deadline: asyncio.TimerHandle | None = None
        self.head_begun = False  # a byte of the awaited head has arrived (then a timeout is 408)
        self.address = "local"

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # No peer address: a Unix socket.
        self.address = address_key(self.client[0]) if self.client else "local"
        if not self.guard.admit(transport, self.address):
            transport.close()
            return
        self._await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # h11 stays IDLE until a whole head is in; any other state means a request (or an
        # upgrade, the transport handed to the WebSocket protocol) or an error and a close.
        if self.conn.their_state is not h11.IDLE:
            self._head_in()
        elif not self.transport.is_closing():
            self.head_begun = self.head_begun or bool(data)
            if self.head_deadline is None:
                self._await_head()  # a keep-alive connection's next head has begun

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self.guard.lost(self.transport)
        super().connection_lost(exc)

    def _await_head(self) -> None:
        self.head_deadline = self.loop.call_later(self.guard.limits.handshake_timeout, self._head_too_slow)

    def _head_in(self) -> None:
        self._cancel_deadline()
        self.head_begun = False
        self.guard.head_complete(self.transport)

    def _cancel_deadline(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def _head_too_slow(self) -> None:
        self.head_deadline = None
        if self.transport.is_closing():
            return  # closed already (shed at the cap, or the peer went): nothing to answer
        self.guard.refused(self.address, Refusal.TIMEOUT)
        if self.head_begun:
            # Raw bytes, not h11: h11 will not send a response before it has a request.
            # close() sends them first; the head's bytes were all read, so no reset drops them.
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()
