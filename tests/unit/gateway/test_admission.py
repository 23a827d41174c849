"""The connection accounting (per address, IPv6 per /64, process-wide with the oldest shed),
its refusal counter and its once-per-interval log, on a fake clock."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry

from gateway.admission import LOG_INTERVAL, AdmissionLimits, ConnectionGuard, Refusal, address_key
from gateway.telemetry import Refusals

REFUSED = "tickwire_gateway_connections_refused_total"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Transport(asyncio.BaseTransport):
    """Only what the guard calls: close(), when it sheds the oldest pending connection."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def close(self) -> None:
        self.closed = True


def transports(n: int) -> list[Transport]:
    return [Transport() for _ in range(n)]


def guard(per_ip: int = 100, connections_per_ip: int = 0, total: int = 4096,
          clock: Clock | None = None) -> tuple[ConnectionGuard, CollectorRegistry]:
    registry = CollectorRegistry()
    refusals = Refusals()
    registry.register(refusals.counter)
    limits = AdmissionLimits(10.0, max_handshakes_per_ip=per_ip, max_connections_per_ip=connections_per_ip,
                             max_handshakes=total)
    return ConnectionGuard(limits, refusals, clock or Clock()), registry


def refused(registry: CollectorRegistry) -> dict[str, float]:
    return {r.value: registry.get_sample_value(REFUSED, {"reason": r.value}) or 0.0 for r in Refusal}


def test_incomplete_heads_are_capped_per_address_and_released_by_head_or_loss() -> None:
    g, registry = guard(per_ip=2)
    a, b, c, d = transports(4)
    assert g.admit(a, "10.0.0.1") and g.admit(b, "10.0.0.1")
    assert not g.admit(c, "10.0.0.1")
    assert g.admit(c, "10.0.0.2")  # another address has its own count
    g.head_complete(a)
    assert g.admit(d, "10.0.0.1")
    g.lost(b)
    g.lost(b)  # both protocols of an upgraded connection report its end
    assert g.admit(b, "10.0.0.1")
    assert not g.admit(Transport(), "10.0.0.1")
    assert refused(registry)["handshakes_per_ip"] == 2


def test_open_connections_are_capped_only_when_set() -> None:
    g, registry = guard(connections_per_ip=2)
    a, b, c = transports(3)
    for t in (a, b):
        assert g.admit(t, "10.0.0.1")
        g.head_complete(t)
    assert not g.admit(c, "10.0.0.1")
    g.lost(a)
    assert g.admit(c, "10.0.0.1")
    assert refused(registry)["connections_per_ip"] == 1
    uncapped, _ = guard(per_ip=1)
    for t in transports(50):
        assert uncapped.admit(t, "10.0.0.1")
        uncapped.head_complete(t)


def test_past_the_process_wide_cap_the_oldest_pending_connection_is_shed() -> None:
    """1. a cap of 3 pending heads over all addresses  2. three from three addresses
    3. a fourth is admitted and the oldest closed  4. a completed head is no longer pending,
    so the next new one sheds the oldest still pending, not it  5. the shed connection's own
    loss later changes nothing; every shedding is counted."""
    g, registry = guard(total=3)
    a, b, c, d, e = transports(5)
    for t, address in ((a, "10.0.0.1"), (b, "10.0.0.2"), (c, "10.0.0.3")):
        assert g.admit(t, address)
    assert g.admit(d, "10.0.0.4")
    assert a.closed and not (b.closed or c.closed or d.closed)
    assert g.pending == 3
    g.head_complete(b)
    assert g.admit(e, "10.0.0.5")  # room made by b: nothing shed
    assert not c.closed
    assert g.admit(Transport(), "10.0.0.6")
    assert c.closed and not b.closed
    g.lost(a)
    g.lost(c)
    assert g.pending == 3
    assert refused(registry) == {"handshakes_per_ip": 0, "connections_per_ip": 0, "handshakes": 2,
                                 "head_timeout": 0}


def test_ipv6_addresses_count_per_64_prefix_and_mapped_ipv4_as_ipv4() -> None:
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("fe80::1%lo") == "fe80::/64"
    g, _ = guard(per_ip=2)
    assert g.admit(Transport(), address_key("2001:db8::1")) and g.admit(Transport(), address_key("2001:db8::2"))
    assert not g.admit(Transport(), address_key("2001:db8::ffff"))  # one host, another address: same /64
    assert g.admit(Transport(), address_key("2001:db8:0:1::1"))


def test_refusals_are_logged_once_per_address_and_interval_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.admission")
    clock = Clock()
    g, registry = guard(per_ip=1, clock=clock)
    assert g.admit(Transport(), "10.0.0.1")
    for _ in range(500):
        assert not g.admit(Transport(), "10.0.0.1")
    g.refused("10.0.0.1", Refusal.TIMEOUT)  # another reason: a line of its own
    g.refused("10.0.0.2", Refusal.TIMEOUT)  # a process-wide reason: not one line per address
    assert len(caplog.records) == 2
    clock.now += LOG_INTERVAL
    assert not g.admit(Transport(), "10.0.0.1")
    assert len(caplog.records) == 3
    assert "(and 499 more since the last line)" in caplog.records[-1].getMessage()
    assert refused(registry)["handshakes_per_ip"] == 501
    assert refused(registry)["head_timeout"] == 2
