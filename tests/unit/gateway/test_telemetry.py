"""The per-turn tally gives /metrics exactly what one ``observe`` and ``inc`` per message would."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from gateway.latency import HOPS
from gateway.message import Message
from gateway.telemetry import BUCKETS, Telemetry

# Hop lengths in µs: zero, exactly on bucket bounds (0.5 ms, 1 ms, 2.5 s), between them,
# negative (clocks of two hosts) and past the last bound.
LENGTHS = (0, 1, 499, 500, 501, 1000, 1999, 7_500, 2_500_000, -300, 9_000_000)


def _messages() -> list[Message]:
    out = []
    for seq, length in enumerate(LENGTHS, 1):
        hops = {"origin": 10_000, "read": 10_000 + length, "publish": 10_000 + 2 * length,
                "gateway_receive": 10_000 + 3 * length}
        out.append(Message(seq, "ticks.A", "{}", hops=hops))
    out.append(Message(len(LENGTHS) + 1, "ticks.A", "{}"))  # no hop stamps: counted, not timed
    return out


def _expected() -> bytes:
    """The same messages through one ``observe`` per hop and one ``inc`` per message."""
    registry = CollectorRegistry(auto_describe=False)
    messages = Counter("tickwire_gateway_messages", "Messages received from JetStream", registry=registry)
    deliveries = Counter("tickwire_gateway_deliveries", "Messages queued to client connections", registry=registry)
    hops = Histogram("tickwire_hop_latency_seconds", "Latency per hop of the data path", ["hop"],
                     buckets=BUCKETS, registry=registry)
    for message in _messages():
        messages.inc()
        deliveries.inc(3)
        if message.hops is not None:
            for name, start, end in HOPS:
                hops.labels(name).observe((message.hops[end] - message.hops[start]) / 1e6)
    return generate_latest(registry)


def _lines(scrape: bytes, *names: str) -> list[str]:
    # The browser hop is fed by reports, not by the feed: not part of this comparison.
    return [line for line in scrape.decode().splitlines()
            if line.startswith(names) and "_created" not in line and "gateway_to_browser" not in line]


async def test_a_turns_tally_reaches_the_metrics_as_per_message_calls_would() -> None:
    telemetry = Telemetry("test", None)
    for message in _messages():
        telemetry.delivered(message, 3, None)
    names = ("tickwire_gateway_messages", "tickwire_gateway_deliveries", "tickwire_hop_latency_seconds")
    assert "tickwire_gateway_messages_total 0.0" in _lines(generate_latest(telemetry.registry), *names)
    await asyncio.sleep(0)  # the end of this turn: the tally is flushed
    got = _lines(generate_latest(telemetry.registry), *names)
    assert got == _lines(_expected(), *names)
    assert "tickwire_gateway_messages_total 12.0" in got
    # A second turn adds to the first, from a tally emptied by the flush.
    for message in _messages():
        telemetry.delivered(message, 3, None)
    await asyncio.sleep(0)
    assert "tickwire_gateway_messages_total 24.0" in _lines(generate_latest(telemetry.registry), *names)
    window = telemetry.latency.summary()
    assert window["nats_to_gateway"]["n"] == 2 * len(LENGTHS)
    assert window["nats_to_gateway"]["max"] == 9_000.0
