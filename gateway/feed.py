"""The feed: one JetStream ordered consumer per process on ``md.>``.

Every stream message passes here once. It is turned into a ``Message`` (frame encoded
once), appended to the replay ring, recorded as its subject's latest (for snapshots) and
handed to the hub. At start the consumer begins ``replay_buffer`` messages before the head
so the ring is full from the first client on, and the latest message of every older
subject is read in one batched request; the feed is ready once it has received the head
it saw at start.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy, StreamState

from gateway.hub import Hub
from gateway.latency import LatencyWindow
from gateway.message import Message, from_bus
from gateway.ring import ReplayRing
from gateway.store import Store
from services.connections import epoch_of
from services.hops import now_us
from services.settings import GatewaySettings

log = logging.getLogger(__name__)


class Feed:
    def __init__(self, nc: NATS, settings: GatewaySettings, hub: Hub, latency: LatencyWindow) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._settings = settings
        self._bus = settings.bus
        self._hub = hub
        self._latency = latency
        self.store = Store(nc, settings.bus.stream, settings.bus.subject_prefix)
        self.ring = ReplayRing(settings.replay_buffer)
        self.latest: dict[str, Message] = {}
        self.head = 0  # highest seq received
        self.epoch = ""
        self.ready = asyncio.Event()
        self._target = 0  # the stream head seen at start: ready once received
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._tiebreak = itertools.count()

    async def stream_state(self) -> StreamState:
        """The stream's state now, from JetStream (first/last seq as the server knows them)."""
        return (await self._js.stream_info(self._bus.stream)).state

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set."""
        info = await self._js.stream_info(self._bus.stream)
        self.epoch = epoch_of(info)
        first, last = info.state.first_seq, info.state.last_seq
        start = max(first, last - self._settings.replay_buffer + 1, 1)
        self.head = start - 1
        self._target = last
        for message in await self.store.last_per_subject(up_to_seq=start - 1):
            self.latest[message.topic] = message
        log.info("feed: stream %s epoch %s seq %d..%d; replaying from %d, %d older subjects",
                 self._bus.stream, self.epoch, first, last, start, len(self.latest))
        self._check_ready()
        sub = await self._js.subscribe(
            f"{self._bus.subject_prefix}.>",
            stream=self._bus.stream,
            cb=self._on_msg,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            config=ConsumerConfig(opt_start_seq=start),
        )
        try:
            await stop.wait()
        finally:
            await sub.unsubscribe()

    async def _on_msg(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        if seq <= self.head:
            await self._new_epoch(seq)
        message = from_bus(seq, msg.subject, msg.headers, msg.data, now_us())
        self.ring.append(message)
        if not message.is_gap:
            self.latest[message.topic] = message
        self.head = seq
        if message.hops is not None:
            self._latency.record(message.hops)
        self._hub.publish(message)
        if self._waiters:
            self._wake_waiters()
        if not self.ready.is_set():
            self._check_ready()

    async def _new_epoch(self, seq: int) -> None:
        # Sequences only go back when the stream was recreated: what we hold is of another
        # lifetime and must not be replayed as if it continued.
        info = await self._js.stream_info(self._bus.stream)
        log.warning("feed: seq %d after %d: stream %s recreated, epoch %s → %s",
                    seq, self.head, self._bus.stream, self.epoch, epoch_of(info))
        self.epoch = epoch_of(info)
        self.ring.clear()
        self.latest.clear()
        self.head = seq - 1

    def _check_ready(self) -> None:
        if self.head >= self._target:
            self.ready.set()

    def _wake_waiters(self) -> None:
        while self._waiters and self._waiters[0][0] <= self.head:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)

    async def wait_head(self, seq: int) -> None:
        """Until this replica has received ``seq`` (callers bound it with a timeout)."""
        if self.head >= seq:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (seq, next(self._tiebreak), future))
        await future

    def first_seq(self) -> int:
        """The oldest seq the ring holds (head + 1 when empty: nothing to replay locally)."""
        first = self.ring.first_seq()
        return self.head + 1 if first is None else first
