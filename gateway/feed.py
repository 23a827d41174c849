"""The feed: one JetStream ordered consumer per process on ``md.>``.

Every stream message passes here once. It is turned into a ``Message`` (frame encoded
once), appended to the replay ring, recorded as its subject's latest (for snapshots) and
handed to the hub. At start the consumer begins ``replay_buffer`` messages before the head
so the ring is full from the first client on, and the latest message of every older
subject is read in one batched request; the feed is ready once it has received the head
it saw at start.

A watch checks the stream every ``WATCH_INTERVAL``. After a NATS reconnect the consumer is
recreated from the head + 1 at once (the server may have lost it). When the stream's epoch
changed (deleted and recreated: sequences restart) the ring and latest are cleared and the
consumer restarts from the new stream's first seq. nats.py's ordered consumer would instead
go on from the old head + 1 and skip the new stream's early messages. When retention
removed messages this replica never received (an outage longer than retention: the stream's
first seq is past head + 1, or the live feed skips seqs) the feed restarts the same way:
clients are closed with 1012 before anything past the hole reaches them, and their resume
gets recovered:false and a snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Callable
from operator import attrgetter

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy, StreamInfo, StreamState

from gateway.hub import Hub
from gateway.intake import decode
from gateway.message import Message
from gateway.ring import ReplayRing
from gateway.store import Store, StoreError
from gateway.telemetry import Telemetry
from services.connections import epoch_of
from services.hops import now_us
from services.settings import GatewaySettings
from services.telemetry import traceparent_of

log = logging.getLogger(__name__)

WATCH_INTERVAL = 1.0  # seconds between checks of the stream's epoch and the connection
UNSUBSCRIBE_TIMEOUT = 2.0


def stream_seq(reply: str) -> int:
    """The stream sequence in a JetStream delivery's reply subject.

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.…`` (9 tokens), or with a domain
    and account hash after ``ACK`` (11 or 12 tokens). nats.py's ``Msg.metadata`` parses the
    whole subject into dataclasses and a datetime per message: ~5 % of the gateway's time
    under load, for one integer.
    """
    tokens = reply.split(".", 8)
    return int(tokens[7] if "." in tokens[8] else tokens[5])


class Feed:
    def __init__(self, nc: NATS, settings: GatewaySettings, hub: Hub, telemetry: Telemetry) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._settings = settings
        self._bus = settings.bus
        self._hub = hub
        self._telemetry = telemetry
        self.stream_last = 0  # the stream's last seq at the latest watch: lag = stream_last - head
        self.store = Store(nc, settings.bus.stream, settings.bus.subject_prefix)
        self.ring = ReplayRing(settings.replay_buffer)
        # topic → its newest message, oldest first, for snapshots. Bounded by retention: a
        # value whose message left the stream goes too, as a restarted replica would not have it.
        self.latest: dict[str, Message] = {}
        self.head = 0  # highest seq received
        self.epoch = ""
        self.ready = asyncio.Event()
        self._target = 0  # the stream head seen at start: ready once received
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._tiebreak = itertools.count()
        self._sub: JetStreamContext.PushSubscription | None = None
        self._generation = 0  # bumped per subscription: a replaced one's messages are ignored
        self._reconnects = 0  # the connection's reconnect count when we last subscribed
        self._suspect = asyncio.Event()  # wakes the watch before its interval
        self._trouble: str | None = None
        # Called with the reason when what this replica holds no longer continues the stream
        # (recreated, or a hole it cannot replay): the app closes every session then.
        self.on_restart: Callable[[str], None] = lambda reason: None
        self._hole = False  # a hole was seen in the live feed: the watch restarts the feed

    async def stream_state(self) -> StreamState:
        """The stream's state now, from JetStream (first/last seq as the server knows them)."""
        return (await self._js.stream_info(self._bus.stream)).state

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, watching for reconnects and a recreated stream."""
        await self._start(await self._js.stream_info(self._bus.stream))
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._wake_on(stop))
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(WATCH_INTERVAL):
                            await self._suspect.wait()
                    self._suspect.clear()
                    if not stop.is_set():
                        await self._watch()
        finally:
            await self._unsubscribe()

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._suspect.set()

    async def _start(self, info: StreamInfo) -> None:
        """(Re)start on the stream's current lifetime: latest per subject, then the consumer."""
        epoch = epoch_of(info)
        first, last = info.state.first_seq, info.state.last_seq
        start = max(first, last - self._settings.replay_buffer + 1, 1)
        self.head = start - 1
        self._target = last
        for message in sorted(await self.store.last_per_subject(up_to_seq=start - 1), key=attrgetter("seq")):
            # A gap notice is news once, live or in a resume; in a snapshot it would repeat an
            # old loss to every new client after each restart.
            if not message.is_gap:
                self.latest[message.topic] = message
        log.info("feed: stream %s epoch %s seq %d..%d; replaying from %d, %d older subjects",
                 self._bus.stream, epoch, first, last, start, len(self.latest))
        self._check_ready()
        await self._subscribe(start)
        # Last: should any step above fail, the next watch sees the epoch still differ and retries.
        self.epoch = epoch

    async def _subscribe(self, start: int) -> None:
        self._generation += 1
        generation = self._generation
        self._reconnects = self._nc.stats["reconnects"]

        async def on_msg(msg: Msg) -> None:
            # A replaced subscription may still deliver what it had in flight: not ours any more.
            if generation == self._generation:
                self._on_msg(msg)

        self._sub = await self._js.subscribe(
            f"{self._bus.subject_prefix}.>",
            stream=self._bus.stream,
            cb=on_msg,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            config=ConsumerConfig(opt_start_seq=start),
        )

    async def _unsubscribe(self) -> None:
        self._generation += 1
        sub, self._sub = self._sub, None
        if sub is not None and self._nc.is_connected:
            with contextlib.suppress(NatsError, TimeoutError):
                async with asyncio.timeout(UNSUBSCRIBE_TIMEOUT):
                    await sub.unsubscribe()

    async def _watch(self) -> None:
        """One check: has the stream been recreated, or the connection come back?"""
        if not self._nc.is_connected:
            return  # services.connections logs the disconnect; nothing to ask the server now
        try:
            info = await self._js.stream_info(self._bus.stream)
            self.stream_last = info.state.last_seq
            self._forget_before(info.state.first_seq)
            if epoch_of(info) != self.epoch:
                await self._new_epoch(info)
            elif self._hole or info.state.first_seq > self.head + 1:
                # Retention removed messages this replica never received (an outage longer
                # than retention, or a consumer recreated past them): resuming at head + 1
                # would leave a hole nobody is told about.
                await self._restart(info, f"seqs after {self.head} left the stream before this replica got them")
            elif self._nc.stats["reconnects"] != self._reconnects or self._sub is None:
                # The server may have lost our ephemeral consumer (a restart): nats.py would only
                # notice after two missed heartbeats (~10 s), so resubscribe from our head now.
                log.info("feed: resubscribing at seq %d after a reconnect", self.head + 1)
                await self._unsubscribe()
                await self._subscribe(self.head + 1)
        except (NatsError, StoreError, TimeoutError) as exc:
            self._problem(f"stream {self._bus.stream} unavailable: {exc or type(exc).__name__}")
            return
        self._problem(None)

    async def _new_epoch(self, info: StreamInfo) -> None:
        # The stream was recreated and its sequence restarted: what we hold is of another
        # lifetime and must not be replayed as if it continued. Connected clients are told to
        # reconnect; they resume with the old epoch and get recovered:false and a snapshot.
        log.warning("feed: stream %s recreated, epoch %s → %s: restarting from its first seq",
                    self._bus.stream, self.epoch, epoch_of(info))
        await self._restart(info, "stream recreated")

    async def _restart(self, info: StreamInfo, reason: str) -> None:
        """Drop what this replica holds and start again on the stream as it is now.

        Clients are closed (1012) first: a resume then finds its since older than anything
        held or retained and gets recovered:false and a snapshot."""
        if reason != "stream recreated":
            log.warning("feed: %s: restarting at the stream's latest", reason)
        await self._unsubscribe()
        self._hole = False
        self.ring.clear()
        self.latest.clear()
        self.ready.clear()
        self.on_restart(reason)
        await self._start(info)

    def _forget_before(self, first_seq: int) -> None:
        """Latest values whose message retention removed from the stream."""
        latest = self.latest
        for topic in list(itertools.takewhile(lambda topic: latest[topic].seq < first_seq, latest)):
            del latest[topic]

    def _problem(self, problem: str | None) -> None:
        """Log a watch problem once when it starts and once when it ends."""
        if problem == self._trouble:
            return
        if problem is None:
            log.info("feed: stream %s available again", self._bus.stream)
        else:
            log.warning("feed: %s", problem)
        self._trouble = problem

    def _on_msg(self, msg: Msg) -> None:
        seq = stream_seq(msg.reply)
        if seq <= self.head or self._hole:
            # Sequences only go back when the stream was recreated: check now, not at the next tick.
            self._suspect.set()
            return
        if seq > self.head + 1:
            # The stream's seqs have no holes (one consumer on all of ``md.>``, limits
            # retention): the ones skipped left the stream before we got them. Nothing after
            # the hole may reach a client whose resume would then start past it: close them
            # now, ignore the rest of this subscription, and let the watch restart the feed.
            self._hole = True
            self._generation += 1
            self.ready.clear()  # new connections wait for the restart, not for the hole
            self.on_restart(f"seqs {self.head + 1}..{seq - 1} left the stream before this replica got them")
            self._suspect.set()
            return
        received = now_us()
        span = self._telemetry.start(msg.headers, msg.subject, seq, received)
        trace = traceparent_of(span) if span is not None else None
        message = decode(seq, msg.subject, msg.headers, msg.data, received, trace)
        self.ring.append(message)
        if not message.is_gap:
            self.latest.pop(message.topic, None)  # to the end: the dict stays in seq order
            self.latest[message.topic] = message
        self.head = seq
        self._telemetry.delivered(message, self._hub.publish(message), span)
        if self._waiters:
            self._wake_waiters()
        if not self.ready.is_set():
            self._check_ready()

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
        try:
            await future
        except asyncio.CancelledError:  # timed out: do not keep it until the head passes seq
            self._waiters = [waiter for waiter in self._waiters if waiter[2] is not future]
            heapq.heapify(self._waiters)
            raise

    def first_seq(self) -> int:
        """The oldest seq the ring holds (head + 1 when empty: nothing to replay locally)."""
        first = self.ring.first_seq()
        return self.head + 1 if first is None else first
