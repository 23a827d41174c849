"""The hub: one copy per matching session, cache kept right as subscriptions change."""

from __future__ import annotations

from gateway.hub import Hub
from gateway.message import Message


class Sink:
    def __init__(self) -> None:
        self.got: list[int] = []

    def deliver(self, message: Message) -> None:
        self.got.append(message.seq)


def msg(seq: int, topic: str) -> Message:
    return Message(seq, topic, "{}")


def test_each_matching_session_gets_one_copy() -> None:
    hub, a, b = Hub(), Sink(), Sink()
    for pattern in ("ticks.AAPL", "ticks.*", "ticks.>"):
        hub.add(a, pattern)
    hub.add(b, "trades.*")
    assert hub.publish(msg(1, "ticks.AAPL")) == 1
    assert hub.publish(msg(2, "trades.AAPL")) == 1
    assert hub.publish(msg(3, "news")) == 0
    assert (a.got, b.got) == ([1], [2])


def test_cache_follows_subscription_changes() -> None:
    hub, a, b = Hub(), Sink(), Sink()
    hub.add(a, "ticks.*")
    hub.publish(msg(1, "ticks.AAPL"))  # caches ticks.AAPL → (a,)
    hub.add(b, "ticks.AAPL")
    hub.publish(msg(2, "ticks.AAPL"))
    hub.remove(a, "ticks.*")
    hub.publish(msg(3, "ticks.AAPL"))
    hub.remove(b, "ticks.AAPL")
    hub.publish(msg(4, "ticks.AAPL"))
    assert (a.got, b.got) == ([1, 2], [2, 3])
    assert hub.patterns == 0


def test_removing_one_of_two_overlapping_patterns_keeps_delivery() -> None:
    hub, a = Hub(), Sink()
    hub.add(a, "ticks.*")
    hub.add(a, "ticks.>")
    hub.publish(msg(1, "ticks.AAPL"))
    hub.remove(a, "ticks.*")
    hub.publish(msg(2, "ticks.AAPL"))
    hub.remove(a, "unknown")
    assert a.got == [1, 2]
