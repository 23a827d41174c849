"""The per-address connection accounting and its once-per-interval log, on a fake clock."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.admission import LOG_INTERVAL, AdmissionLimits, ConnectionGuard, Refusal


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def transports(n: int) -> list[asyncio.BaseTransport]:
    return [asyncio.BaseTransport() for _ in range(n)]


def test_incomplete_heads_are_capped_per_address_and_released_by_head_or_loss() -> None:
    guard = ConnectionGuard(AdmissionLimits(10.0, max_handshakes_per_ip=2, max_connections_per_ip=0), Clock())
    a, b, c, d = transports(4)
    assert guard.admit(a, "10.0.0.1") and guard.admit(b, "10.0.0.1")
    assert not guard.admit(c, "10.0.0.1")
    assert guard.admit(c, "10.0.0.2")  # another address has its own count
    guard.head_complete(a)
    assert guard.admit(d, "10.0.0.1")
    guard.lost(b)
    guard.lost(b)  # both protocols of an upgraded connection report its end
    assert guard.admit(b, "10.0.0.1")
    assert not guard.admit(asyncio.BaseTransport(), "10.0.0.1")


def test_open_connections_are_capped_only_when_set() -> None:
    guard = ConnectionGuard(AdmissionLimits(10.0, max_handshakes_per_ip=100, max_connections_per_ip=2), Clock())
    a, b, c = transports(3)
    for t in (a, b):
        assert guard.admit(t, "10.0.0.1")
        guard.head_complete(t)
    assert not guard.admit(c, "10.0.0.1")
    guard.lost(a)
    assert guard.admit(c, "10.0.0.1")
    uncapped = ConnectionGuard(AdmissionLimits(10.0, max_handshakes_per_ip=1, max_connections_per_ip=0), Clock())
    for t in transports(50):
        assert uncapped.admit(t, "10.0.0.1")
        uncapped.head_complete(t)


def test_refusals_are_logged_once_per_address_and_interval_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.admission")
    clock = Clock()
    guard = ConnectionGuard(AdmissionLimits(10.0, max_handshakes_per_ip=1, max_connections_per_ip=0), clock)
    assert guard.admit(asyncio.BaseTransport(), "10.0.0.1")
    for _ in range(500):
        assert not guard.admit(asyncio.BaseTransport(), "10.0.0.1")
    guard.notices.note("10.0.0.1", Refusal.TIMEOUT)  # another reason: a line of its own
    assert len(caplog.records) == 2
    clock.now += LOG_INTERVAL
    assert not guard.admit(asyncio.BaseTransport(), "10.0.0.1")
    assert len(caplog.records) == 3
    assert "(and 499 more since the last line)" in caplog.records[-1].getMessage()
