"""The hub: one copy per matching session, cache kept right as subscriptions change, runs in order."""

from __future__ import annotations

import asyncio

import pytest

import gateway.hub
from gateway import frames
from gateway.hub import Hub, Run
from gateway.message import Message
from gateway.outbox import Outbox, OutboxLimits
from services.subjects import matches


class Sink:
    def __init__(self) -> None:
        self.got: list[int] = []
        self.runs = 0
        self.unsettled = 0

    def deliver_run(self, run: Run) -> None:
        self.runs += 1
        self.got.extend(m.seq for m in run.messages)


def msg(seq: int, topic: str) -> Message:
    return Message(seq, topic, "{}")


async def test_each_matching_session_gets_one_copy() -> None:
    hub, a, b = Hub(), Sink(), Sink()
    for pattern in ("ticks.AAPL", "ticks.*", "ticks.>"):
        hub.add(a, pattern)
    hub.add(b, "trades.*")
    assert hub.publish(msg(1, "ticks.AAPL")) == 1
    assert hub.publish(msg(2, "trades.AAPL")) == 1
    assert hub.publish(msg(3, "news")) == 0
    hub.settle()
    assert (a.got, b.got) == ([1], [2])


async def test_cache_follows_subscription_changes() -> None:
    hub, a, b = Hub(), Sink(), Sink()
    hub.add(a, "ticks.*")
    hub.publish(msg(1, "ticks.AAPL"))  # caches ticks.AAPL → (a,)
    hub.settle()
    hub.add(b, "ticks.AAPL")
    hub.publish(msg(2, "ticks.AAPL"))
    hub.settle()
    hub.remove(a, "ticks.*")
    hub.publish(msg(3, "ticks.AAPL"))
    hub.settle()
    hub.remove(b, "ticks.AAPL")
    hub.publish(msg(4, "ticks.AAPL"))
    hub.settle()
    assert (a.got, b.got) == ([1, 2], [2, 3])
    assert hub.patterns == 0


async def test_removing_one_of_two_overlapping_patterns_keeps_delivery() -> None:
    hub, a = Hub(), Sink()
    hub.add(a, "ticks.*")
    hub.add(a, "ticks.>")
    hub.publish(msg(1, "ticks.AAPL"))
    hub.remove(a, "ticks.*")
    hub.publish(msg(2, "ticks.AAPL"))
    hub.remove(a, "unknown")
    hub.settle()
    assert a.got == [1, 2]


async def test_a_turns_messages_reach_each_session_in_publish_order_as_runs() -> None:
    """1. a gets everything, b only ticks  2. ticks 1, 2, trades 3, ticks 4 in one turn
    3. at the end of the turn a holds 1-4 in order (three runs: ticks 1-2 for a and b,
    trades 3 for a, ticks 4 for a and b), b holds 1, 2, 4 (two runs)."""
    hub, a, b = Hub(), Sink(), Sink()
    hub.add(a, ">")
    hub.add(b, "ticks.*")
    for seq, topic in ((1, "ticks.A"), (2, "ticks.B"), (3, "trades.A"), (4, "ticks.A")):
        hub.publish(msg(seq, topic))
    assert a.got == [] and b.got == []  # nothing before the turn ends
    await asyncio.sleep(0)
    assert a.got == [1, 2, 3, 4] and b.got == [1, 2, 4]
    assert (a.runs, b.runs) == (3, 2)


async def test_a_subscriber_removed_later_in_the_turn_still_gets_what_was_published_before() -> None:
    hub, a = Hub(), Sink()
    hub.add(a, "ticks.*")
    hub.publish(msg(1, "ticks.A"))
    hub.remove(a, "ticks.*")
    hub.publish(msg(2, "ticks.A"))
    await asyncio.sleep(0)
    assert a.got == [1]


def test_the_topic_cache_is_bounded_and_drops_its_oldest_entry() -> None:
    hub, a = Hub(cache_topics=3), Sink()
    hub.add(a, "ticks.*")
    for i in range(5):
        assert hub.matching(f"ticks.S{i}") == (a,)
    assert hub.cached_topics == 3 and hub.matching("ticks.S4") == (a,)


async def test_a_gap_notice_joining_a_run_is_counted_and_leaves_in_a_frame_of_its_own() -> None:
    """1. a subscribed to everything; a tick, then a gap notice for ticks (same receivers:
    one run) 2. the run counts the gap, so the outbox sends the tick and the gap in two frames."""
    runs: list[Run] = []
    hub, a = Hub(), Sink()
    a.deliver_run = runs.append  # type: ignore[method-assign]
    hub.add(a, ">")
    hub.publish(msg(1, "ticks.A"))
    hub.publish(Message(2, "ticks", frames.gap("ticks", "trimmed"), is_gap=True))
    hub.settle()
    assert len(runs) == 1 and runs[0].gaps == 1
    outbox = Outbox(OutboxLimits(messages=10, bytes=10_000, batch_max=10))
    outbox.extend(runs[0])
    first, second = outbox.take(), outbox.take()
    assert [m.seq for m in first] == [1] and [m.is_gap for m in second] == [True]


def test_churning_literal_subscriptions_touches_only_their_own_topics(monkeypatch: pytest.MonkeyPatch) -> None:
    """1. 10,000 topics cached for a ``ticks.*`` subscriber; 2. another subscribes to and
    unsubscribes from 128 literals (what a ``ticks.*`` grant allows in one frame) without one
    pattern match against the cache (issue 14 #7), and the other 9,872 topics stay cached;
    3. each literal's receivers are right after each change."""
    hub, a, b = Hub(), Sink(), Sink()
    hub.add(a, "ticks.*")
    for i in range(10_000):
        hub.matching(f"ticks.S{i}")
    calls = 0

    def counting(pattern: str, topic: str) -> bool:
        nonlocal calls
        calls += 1
        return matches(pattern, topic)

    monkeypatch.setattr(gateway.hub, "matches", counting)
    literals = [f"ticks.S{i}" for i in range(128)]
    for topic in literals:
        hub.add(b, topic)
    assert calls == 0 and hub.cached_topics == 10_000 - 128
    assert all(set(hub.matching(t)) == {a, b} for t in literals)
    for topic in literals:
        hub.remove(b, topic)
    assert all(hub.matching(t) == (a,) for t in literals) and hub.cached_topics == 10_000
