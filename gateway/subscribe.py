"""Adding subscriptions to a session: snapshot, or resume from ``since`` without gap or duplicate.

The rule that keeps a resume exact: a pattern goes live in the same synchronous step (no
``await`` in between) that finds nothing left to replay below the head. Replay advances a
cursor through JetStream (older than the ring), then the ring, in chunks; between chunks it
yields and may await (outbox room, JetStream) while the feed moves on, and the next chunk
picks up at the cursor wherever that now is.

A snapshot is the latest message of each matching subject as of the head H that
``subscribed`` carries, copied in that same step and delivered in seq order a step at a
time (``SNAPSHOT_CHUNK`` messages, or until the outbox is half full, then a yield and a
wait for room): a ``ticks.*`` snapshot of 10,000 subjects neither holds the loop nor
overflows the outbox bound. Its patterns are not live meanwhile; what reached them after H
follows as a resume from H (a fresh topic's messages up to H are the snapshot's, never
replayed), then they go live by the rule above. So a client sees what an instant snapshot
would give: ``subscribed``, each topic's latest once, then every newer seq, overall in
increasing seq. Topics a live pattern of the session already covers are
left out of a new subscription's snapshot and replay, whatever their seq: that pattern
delivers them, so a connection gets each seq once and, per topic, in increasing order. A
resume of overlapping subscriptions that should replay them all goes in one frame.

With auth on, a session's grant bounds its patterns: a pattern is allowed only when every
topic it can match is granted (``Grant.allows``, i.e. ``pattern_within``). A wildcard
reaching past the grant is refused, never narrowed by filtering, so what a client
receives is always exactly what it asked for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from nats.errors import Error as NatsError

from gateway import frames
from gateway.feed import Feed
from gateway.hub import Hub
from gateway.message import Message
from gateway.session import Session, SessionState, covering
from gateway.store import StoreError
from gateway.tokens import Grant
from services.protocol import CloseCode, ErrorCode, ProtocolError, Subscribe
from services.subjects import is_literal

log = logging.getLogger(__name__)

CHUNK = 512  # ring entries scanned / JetStream messages read per step
SNAPSHOT_CHUNK = 1024  # latest messages delivered per step of a snapshot (~1 ms of the loop)
RETENTION = "retention"  # a gap notice's reason: retention removed messages a resume still needed
AHEAD_WAIT = 5.0  # how long a since ahead of this replica (but stored) may wait for it


@dataclass(frozen=True, slots=True)
class Plan:
    """What a checked ``subscribe`` does: which topics get a snapshot, which resume from where."""

    topics: tuple[str, ...]
    fresh: list[str]
    resume: dict[str, int]
    recovered: bool


def forbidden(grant: Grant | None, topics: tuple[str, ...]) -> tuple[str, ...]:
    """The topics ``grant`` does not allow (none when auth is off)."""
    if grant is None:
        return ()
    return tuple(t for t in topics if not grant.allows(t))


def _granted(session: Session, topics: tuple[str, ...], why: str) -> tuple[str, ...]:
    """``topics`` the session's grant allows; the others get one ``forbidden`` error naming them."""
    refused = forbidden(session.grant, topics)
    if refused:
        session.send(frames.error(ErrorCode.FORBIDDEN, f"{why}: {', '.join(refused)}", topics=list(refused)))
    return tuple(t for t in topics if t not in refused)


@dataclass
class Subscriber:
    feed: Feed
    hub: Hub
    max_subscriptions: int

    async def subscribe(self, session: Session, frame: Subscribe) -> None:
        """Serve one ``subscribe`` frame; raise ProtocolError to refuse it.

        Topics outside the session's grant get one ``forbidden`` error naming them; the
        rest of the frame proceeds."""
        allowed = _granted(session, frame.topics, "not granted")
        if len(allowed) < len(frame.topics):
            if not allowed:
                return
            frame = replace(frame, topics=allowed)
        await self.apply(session, await self.prepare(session, frame))

    def regrant(self, session: Session, grant: Grant) -> None:
        """A fresh token's grant replaces the old; subscriptions it no longer covers end."""
        session.grant = grant
        kept = _granted(session, tuple(session.patterns), "no longer granted")
        self.unsubscribe(session, tuple(t for t in session.patterns if t not in kept))

    async def prepare(self, session: Session, frame: Subscribe) -> Plan:
        """Every check that may refuse ``frame``, before anything is sent (SSE answers 400 here)."""
        new = [t for t in frame.topics if t not in session.patterns]
        if len(session.patterns) + len(new) > self.max_subscriptions:
            raise ProtocolError(ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                                f"at most {self.max_subscriptions} subscriptions per connection")
        resume = {t: s for t in frame.topics if (s := frame.since_for(t)) is not None}
        if resume and (frame.epoch is None or frame.epoch == self.feed.epoch):
            await self._await_since(max(resume.values()))
            if await self._retained(min(resume.values())):
                return Plan(frame.topics, [t for t in frame.topics if t not in resume], resume, True)
        return Plan(frame.topics, list(frame.topics), {}, not resume)

    async def apply(self, session: Session, plan: Plan) -> None:
        """Send ``subscribed``, the snapshot as of that moment, then catch up and go live."""
        head = self.feed.head
        session.send(frames.subscribed(plan.topics, head, self.feed.epoch, plan.recovered))
        fresh = await self._snapshot(session, plan.fresh, head)
        # What reached the fresh topics after ``head`` follows their snapshot in the catch-up
        # that resumes the others; the snapshot gave their latest up to it.
        since = {**dict.fromkeys(fresh, head), **plan.resume}
        if since and session.state is SessionState.OPEN:
            await self._resume(session, since, _Fresh(head, covering(fresh) if fresh else None))

    def unsubscribe(self, session: Session, topics: tuple[str, ...]) -> None:
        for topic in topics:
            if topic in session.patterns:
                session.remove_pattern(topic)
                self.hub.remove(session, topic)

    def drop(self, session: Session) -> None:
        self.unsubscribe(session, tuple(session.patterns))

    async def _await_since(self, since: int) -> None:
        if since <= self.feed.head:
            return
        # The client may come from a replica further ahead: believe it if JetStream does.
        last = (await self.feed.stream_state()).last_seq
        if since > last:
            raise ProtocolError(ErrorCode.BAD_SINCE, f"since {since} is beyond the stream's last seq {last}")
        try:
            async with asyncio.timeout(AHEAD_WAIT):
                await self.feed.wait_head(since)
        except TimeoutError:
            raise ProtocolError(ErrorCode.UNAVAILABLE,
                                f"this replica has not reached seq {since} yet; retry") from None

    async def _retained(self, since: int) -> bool:
        if since + 1 >= self.feed.first_seq():
            return True
        return since + 1 >= (await self.feed.stream_state()).first_seq

    def _go_live(self, session: Session, topics: list[str]) -> None:
        for topic in topics:
            if topic not in session.patterns:
                session.add_pattern(topic)
                self.hub.add(session, topic)

    async def _snapshot(self, session: Session, topics: list[str], head: int) -> list[str]:
        """Deliver the latest message of every subject ``topics`` match as of ``head``, in seq
        order, a step at a time; return the topics that were granted."""
        # A token renewed while a subscribe awaited (the reader takes ``auth`` meanwhile) may
        # grant less than the one the subscribe was checked against: checked again here.
        topics = list(_granted(session, tuple(topics), "no longer granted"))
        latest, match = _candidates(self.feed.latest, topics)
        grant, outbox, done = session.grant, session.outbox, 0
        while done < len(latest) and session.state is SessionState.OPEN:
            if session.grant is not grant:  # renewed to less meanwhile: the go-live tells the client
                grant = session.grant
                match = covering(t for t in topics if not forbidden(grant, (t,)))
            # A step ends after SNAPSHOT_CHUNK entries, or once the outbox is half full, so
            # neither the loop nor the outbox bound pays for the whole snapshot at once.
            end = min(len(latest), done + SNAPSHOT_CHUNK)
            while done < end and not outbox.above_half():
                message = latest[done]
                done += 1
                if (match is None or match(message.topic)) and not session.already_live(message):
                    session.deliver(message)
            if done < len(latest):
                await _pace(session)
        return topics

    async def _resume(self, session: Session, since: dict[str, int], fresh: _Fresh) -> None:
        cursor = min(since.values())
        subject_filter = self.feed.store.filter_for(list(since))
        # One compiled test per distinct since rather than ``matched_by`` per pattern per message.
        groups = [(s, covering(t for t, ts in since.items() if ts == s)) for s in set(since.values())]

        def wanted(m: Message) -> bool:
            if m.is_gap:
                return (any(m.seq > s and m.matched_by(t) for t, s in since.items())
                        and not session.already_live(m))
            return (not fresh.had(m) and any(m.seq > s and match(m.topic) for s, match in groups)
                    and not session.already_live(m))

        while session.state is SessionState.OPEN:
            ring, first = self.feed.ring, self.feed.first_seq()
            if cursor + 1 >= first:
                start = ring.index_after(cursor)
                if start >= len(ring):
                    self._go_live(session, list(_granted(session, tuple(since), "no longer granted")))
                    return
                end = min(len(ring), start + CHUNK)
                for i in range(start, end):
                    if wanted(ring[i]):
                        session.deliver(ring[i])
                cursor, more = ring[end - 1].seq, end < len(ring)
            else:
                cursor, more = await self._read_store(session, cursor, subject_filter, wanted, since), True
            # A yield between steps while there is more to scan; once caught up only a wait
            # for room, or a feed with a message every turn would keep the go-live a turn away.
            await (_pace(session) if more else session.wait_room())

    async def _read_store(self, session: Session, cursor: int, subject_filter: str,
                          wanted: Callable[[Message], bool], topics: dict[str, int]) -> int:
        """Deliver the next batch older than the ring from JetStream; return the new cursor."""
        head_before = self.feed.head  # everything up to here was stored before the request
        try:
            batch = await self.feed.store.read_from(cursor + 1, subject_filter, CHUNK)
            # Retention may have removed messages after the cursor before this read reached
            # them (the check in ``prepare`` was one moment; a catch-up lasts longer), and a
            # read by seq cannot tell them from messages of other subjects: the stream's first
            # seq, asked after the read, can.
            stream_first = (await self.feed.stream_state()).first_seq
        except (StoreError, NatsError, TimeoutError) as exc:
            # ``subscribed`` is out already: an error frame alone would leave the subscription
            # silently dead (never live, never replayed). Closed, the client resumes with since.
            log.warning("session %s: catch-up read failed: %s", session.id, exc or type(exc).__name__)
            session.close(CloseCode.TRY_AGAIN, "catch-up from the stream failed; resume")
            return cursor
        if stream_first > cursor + 1:
            log.warning("session %s: seqs %d..%d left the stream during its catch-up: gap notices sent",
                        session.id, cursor + 1, stream_first - 1)
            for topic in topics:
                session.send(frames.gap(topic, RETENTION))
        first = self.feed.first_seq()  # the ring may have moved on while we waited
        for message in batch.messages:
            if message.seq >= first:
                return first - 1
            if wanted(message):
                session.deliver(message)
            cursor = message.seq
        if batch.exhausted:
            return max(cursor, min(first - 1, head_before))
        return cursor


@dataclass(frozen=True, slots=True)
class _Fresh:
    """Topics whose snapshot (their latest up to ``head``) was delivered: a catch-up sends
    them only what came after, so per topic the snapshot comes once and first."""

    head: int
    match: Callable[[str], bool] | None  # None: no fresh topics

    def had(self, message: Message) -> bool:
        return self.match is not None and message.seq <= self.head and self.match(message.topic)


async def _pace(session: Session) -> None:
    """Between two steps of a snapshot or catch-up: let the loop run (the writer, the feed,
    other clients), then wait for the outbox to be at most half full."""
    await asyncio.sleep(0)  # a yield, not a wait: without it a step that finds room never ends
    await session.wait_room()


def _candidates(latest: dict[str, Message], topics: list[str]) -> tuple[list[Message], Callable[[str], bool] | None]:
    """The latest messages a snapshot of ``topics`` scans, in seq order, and the test each must
    pass (None: all of them match).

    Literals alone are one lookup each. With a wildcard, every subject's latest, copied at
    once (the dict is kept in seq order by the feed), is tested in ``_snapshot``'s steps: one
    scan of 10,000 subjects is ~4 ms of the loop, ~20 on a loaded machine. A ``ticks.*``
    grant allows 128 literals per frame: scanning 10,000 subjects for each of them held the
    loop ~1 s per frame (tests/integration/gateway/test_churn.py)."""
    if all(is_literal(t) for t in topics):
        return sorted((m for t in topics if (m := latest.get(t)) is not None), key=lambda m: m.seq), None
    # Gap notices are never among the latest: a topic match is the whole test.
    return list(latest.values()), covering(topics)
