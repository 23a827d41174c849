"""A snapshot delivered in steps: exact under live traffic, paced by the outbox, never cut."""

from __future__ import annotations

import asyncio
import json
import random
from collections import defaultdict
from dataclasses import dataclass, field

from gateway import frames
from gateway.frames import FrameCache
from gateway.hub import Hub
from gateway.message import Message
from gateway.outbox import OutboxLimits
from gateway.ring import ReplayRing
from gateway.session import Session, SessionState
from gateway.subscribe import SNAPSHOT_CHUNK, Plan, Subscriber
from gateway.writer import ws_text

TOPICS = 3 * SNAPSHOT_CHUNK


class FakeStore:
    def filter_for(self, patterns: list[str]) -> str:
        return "md.>"


@dataclass
class FakeFeed:
    """What the subscriber reads of gateway.feed.Feed, fed by ``publish`` as ``_on_msg`` would."""

    hub: Hub
    head: int = 0
    epoch: str = "e1"
    latest: dict[str, Message] = field(default_factory=dict)
    ring: ReplayRing = field(default_factory=lambda: ReplayRing(100_000))
    store: FakeStore = field(default_factory=FakeStore)

    def publish(self, topic: str) -> Message:
        self.head += 1
        message = Message(self.head, topic, frames.msg(topic, self.head, f"{self.head}-0", self.head, b"{}"))
        self.ring.append(message)
        self.latest.pop(topic, None)
        self.latest[topic] = message
        self.hub.publish(message)
        return message

    def first_seq(self) -> int:
        first = self.ring.first_seq()
        return self.head + 1 if first is None else first


def _drain(session: Session, cache: FrameCache, into: list[dict[str, object]]) -> None:
    """What a writer would send now, parsed; then the room it made."""
    while session.outbox:
        frame = json.loads(ws_text(session.outbox, cache))
        into.extend(frame["msgs"] if frame["type"] == "batch" else [frame])
    session.made_room()


async def test_a_stepped_snapshot_under_live_traffic_is_each_topics_latest_once_then_everything_newer() -> None:
    """1. 3 × SNAPSHOT_CHUNK topics have a latest message; a session with an outbox bound of
    one chunk subscribes ticks.* without since
    2. at every turn of the loop while the snapshot runs, a live message arrives on a random
    topic (some already snapshotted, some not yet), and a writer drains the outbox
    3. the snapshot took several steps and waited for room; the session was never cut
    4. the client got ``subscribed`` (seq H), then each topic's latest as of H once, then every
    message after H, per topic and overall in increasing seq, nothing missing."""
    hub = Hub()
    feed = FakeFeed(hub)
    for i in range(TOPICS):
        feed.publish(f"ticks.S{i}")
    for i in range(0, TOPICS, 3):  # a second message on some: the snapshot is of the latest
        feed.publish(f"ticks.S{i}")
    await asyncio.sleep(0)  # the hub's settle for those (no session yet)
    subscriber = Subscriber(feed, hub, max_subscriptions=128)  # type: ignore[arg-type]
    session = Session("s", OutboxLimits(messages=SNAPSHOT_CHUNK, bytes=1 << 30, batch_max=256))
    rng = random.Random(14)
    cache, received, published = FrameCache(), [], []
    task = asyncio.create_task(subscriber.apply(session, Plan(("ticks.*",), ["ticks.*"], {}, True)))
    turns = 0
    while not task.done():
        # One loop turn per live message: interleaves them with the snapshot's steps exactly.
        published.append(feed.publish(f"ticks.S{rng.randrange(TOPICS)}"))
        await asyncio.sleep(0)
        _drain(session, cache, received)
        turns += 1
    await task
    for _ in range(20):
        published.append(feed.publish(f"ticks.S{rng.randrange(TOPICS)}"))
    await asyncio.sleep(0)  # the hub's settle: the live ones reach the session
    _drain(session, cache, received)

    assert session.state is SessionState.OPEN
    assert turns >= TOPICS // SNAPSHOT_CHUNK  # several steps, live traffic between them
    assert received[0]["type"] == "subscribed"
    head = int(received[0]["seq"])  # type: ignore[call-overload]
    messages = received[1:]
    assert all(m["type"] == "msg" for m in messages)
    seqs = [int(m["seq"]) for m in messages]  # type: ignore[call-overload]
    assert seqs == sorted(set(seqs))  # increasing overall: no duplicate, no reordering
    newer = [m.seq for m in published if m.seq > head]
    by_topic: dict[str, list[int]] = defaultdict(list)
    for m in messages:
        by_topic[str(m["topic"])].append(int(m["seq"]))  # type: ignore[call-overload]
    assert len(by_topic) == TOPICS
    latest_at_head = _latest_at(feed, head)
    for topic, topic_seqs in by_topic.items():
        assert topic_seqs[0] == latest_at_head[topic], topic
        assert all(s > head for s in topic_seqs[1:]), topic
    assert sorted(s for s in seqs if s > head) == newer
    assert "ticks.*" in session.patterns


def _latest_at(feed: FakeFeed, head: int) -> dict[str, int]:
    """Each topic's latest seq up to ``head``, from the ring (which holds everything here)."""
    latest: dict[str, int] = {}
    for i in range(len(feed.ring)):
        message = feed.ring[i]
        if message.seq <= head:
            latest[message.topic] = message.seq
    return latest


async def test_a_fresh_wildcard_beside_a_resumed_literal_it_covers_sends_that_topic_once_in_order() -> None:
    """1. ticks.A has seqs 1..5 among others  2. one frame: ticks.* fresh, ticks.A resumed from 2
    3. ticks.A arrives once from the snapshot (its latest, 5), not replayed from 2 after it;
    a live ticks.A after that follows."""
    hub = Hub()
    feed = FakeFeed(hub)
    for topic in ("ticks.A", "ticks.B", "ticks.A", "ticks.A", "ticks.A", "ticks.C", "ticks.A"):
        feed.publish(topic)
    subscriber = Subscriber(feed, hub, max_subscriptions=128)  # type: ignore[arg-type]
    session = Session("s", OutboxLimits(messages=1000, bytes=1 << 30, batch_max=256))
    await subscriber.apply(session, Plan(("ticks.*", "ticks.A"), ["ticks.*"], {"ticks.A": 2}, True))
    feed.publish("ticks.A")
    await asyncio.sleep(0)  # the hub's settle
    received: list[dict[str, object]] = []
    _drain(session, FrameCache(), received)
    assert [(m["topic"], m["seq"]) for m in received[1:]] == [
        ("ticks.B", 2), ("ticks.C", 6), ("ticks.A", 7), ("ticks.A", 8)]
