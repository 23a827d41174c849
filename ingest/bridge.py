"""Publish a batch to JetStream, wait for every ack, then advance the high-water mark and XACK it.

Order of effects per batch (design §1): lease confirmed → each new entry published with
``Nats-Msg-Id`` (pipelined, ``ingest.publisher``: one socket write) → all acks awaited → dead
letters written → high-water mark raised and the batch XACKed, in one script, only while the
lease is ours. Nothing is XACKed before JetStream acknowledged it; should Redis refuse the
XACK, the mark stands and every later read skips the entries left pending, however long
after the duplicate window. A failed or timed-out publish is retried with the same Msg-Id (a
timed-out publish may have been stored: JetStream drops the duplicate). While NATS is away,
publishes queue in nats.py's bounded buffer; past the bound (``OutboundBufferLimitError``)
the batch waits for the connection and is retried, never dropped.

Fencing: the lease's local deadline is checked before every piece is sent. A replica paused
(SIGSTOP, a long GC, a frozen VM) past its lease resumes with an expired deadline and stops
before publishing anything, while the replica that took over owns the stream.

Entries trimmed before they were published (design §1) become a ``gap`` notice, published in
their place in the batch's order: a pending entry that reads back as nil, or a gap the reader
recorded for never-delivered entries (``ingest.reader``).

The high-water mark (``tickwire:hwm:<stream>``) is the highest entry ID handled (published,
dead-lettered or reported trimmed). JetStream's duplicate window is short; the mark makes
a re-delivery of any age a no-op. The replica also remembers what it handled: when Redis
goes away after a publish was acknowledged and before the mark could be written, the
re-read that follows its return skips those entries however long the outage lasted.
What stays open is a replica killed between the publish ack and the mark's write (one Redis
round trip): its successor re-publishes that batch, de-duplicated only within the window.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import redis.asyncio as aioredis
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError

from ingest.deadletter import dead_letter
from ingest.leases import Lease, LeaseLost, Leases
from ingest.mapping import EntryKey, Message, Rejected, entry_key, format_key, gap_notice, map_entry
from ingest.publisher import AckedPublisher, Sent, raise_if_cancelled
from ingest.reader import Entry, Gap, gaps_key
from ingest.stats import IngestStats
from services.backoff import Backoff
from services.envelope import MSG_ID, ORIGIN_TS, TRACEPARENT, TRACESTATE
from services.hops import now_us
from services.settings import IngestSettings
from services.telemetry import (
    ATTR_DESTINATION,
    ATTR_MESSAGE_ID,
    ATTR_QUEUE_DELAY_US,
    ATTR_STREAM,
    ATTR_SYSTEM,
    Span,
    SpanKind,
    Tracer,
    extract,
    sampled,
    traceparent_of,
)

log = logging.getLogger(__name__)

HWM_PREFIX = "tickwire:hwm:"
ACK_TIMEOUT = 5.0  # nats.py's own js.publish default
BACKOFF_MIN = 0.1

# Raise the mark (KEYS[1]) to ARGV[2] unless it is higher, then XACK the IDs ARGV[4]… on
# stream KEYS[3] for group ARGV[3], while the lease (KEYS[2]) is ARGV[1]'s. A refused XACK
# leaves the mark raised: a script's effects are not rolled back.
_MARK_AND_ACK = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
local cur = redis.call('GET', KEYS[1])
local higher = true
if cur then
  local cms, cseq = string.match(cur, '^(%d+)-(%d+)$')
  local nms, nseq = string.match(ARGV[2], '^(%d+)-(%d+)$')
  cms, cseq, nms, nseq = tonumber(cms), tonumber(cseq), tonumber(nms), tonumber(nseq)
  higher = not (cms and (nms < cms or (nms == cms and nseq <= cseq)))
end
if higher then redis.call('SET', KEYS[1], ARGV[2]) end
for i = 4, #ARGV, 1000 do  -- unpack is limited in how many values it returns
  redis.call('XACK', KEYS[3], ARGV[3], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return 1
"""

# Drop the first ARGV[2] recorded gaps once announced; only the lease holder may (a replica
# that lost the lease would drop gaps the new holder recorded and has not announced yet).
_GAPS_ANNOUNCED = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('LTRIM', KEYS[1], ARGV[2], -1)
return 1
"""


def hwm_key(stream: str) -> str:
    return f"{HWM_PREFIX}{stream}"


class Bridge:
    """Shared by every stream worker of one replica: one acked publisher, one publish-failing
    state logged on change, the high-water marks this replica handled."""

    def __init__(self, redis: aioredis.Redis, nc: NATS, publisher: AckedPublisher, leases: Leases,
                 settings: IngestSettings, stats: IngestStats, tracer: Tracer | None = None) -> None:
        self.redis = redis
        self.nc = nc
        self.publisher = publisher
        self.leases = leases
        self.settings = settings
        self.stats = stats
        self._mark_and_ack = redis.register_script(_MARK_AND_ACK)
        self._gaps_announced = redis.register_script(_GAPS_ANNOUNCED)
        self._failing: type[BaseException] | None = None  # why publishes fail, logged on change, not per retry
        self._tracer = tracer
        # Per stream, the highest entry this replica handled: a fact about MD whoever holds
        # the lease, and known even when Redis could not be told.
        self._handled: dict[str, EntryKey] = {}

    async def load_hwm(self, stream: str) -> EntryKey:
        raw = await self.redis.get(hwm_key(stream))
        stored = entry_key(raw.decode() if isinstance(raw, bytes) else raw) if raw else (0, 0)
        return max(stored, self._handled.get(stream, (0, 0)))

    async def handle(self, lease: Lease, entries: Sequence[Entry], hwm: EntryKey,
                     gaps: Sequence[Gap] = ()) -> EntryKey:
        """Process one batch read from ``lease.stream`` (after the ``gaps`` recorded before it);
        returns the new high-water mark."""
        stream = lease.stream
        prefix = self.settings.bus.subject_prefix
        read_us = now_us()
        max_message = self.nc.max_payload
        messages = [gap_notice(stream, gap.first_missing, prefix=prefix) for gap in gaps]
        rejected: list[tuple[Rejected, Entry]] = []
        trimmed: list[str] = []
        skipped = 0
        for entry in entries:
            if entry_key(entry.id) <= hwm:
                skipped += 1  # handled already, trimmed since or not
                continue
            if entry.trimmed:
                if not trimmed:
                    messages.append(gap_notice(stream, entry.id, prefix=prefix))
                trimmed.append(entry.id)
                continue
            mapped = map_entry(stream, entry.id, entry.fields, prefix=prefix,
                               read_us=read_us, max_payload=self.settings.max_payload, max_message=max_message)
            if isinstance(mapped, Rejected):
                rejected.append((mapped, entry))
            else:
                messages.append(mapped)

        await self.leases.confirm(lease)
        spans = self._start_spans(stream, messages, read_us) if self._tracer is not None else []
        await self._publish(lease, messages)
        for span in spans:
            span.end()  # read from Redis → publish acknowledged
        if rejected:
            await dead_letter(self.redis, self.settings.dead_letter_stream, stream, rejected)
        for gap in gaps:
            self._report_gap(stream, gap.first_missing, gap.count, f"never read, after {gap.after}")
        if trimmed:
            self._report_gap(stream, trimmed[0], len(trimmed), f"pending, {trimmed[0]} … {trimmed[-1]}")
        if entries:
            top = max(hwm, max(entry_key(entry.id) for entry in entries))
            if top > hwm:
                self._handled[stream] = max(top, self._handled.get(stream, top))
            if not await self._mark_and_ack(keys=[hwm_key(stream), lease.key, stream],
                                            args=[self.leases.replica, format_key(top), self.settings.group,
                                                  *(entry.id for entry in entries)]):
                raise LeaseLost(stream)
            hwm = top
        if gaps and not await self._gaps_announced(keys=[gaps_key(stream), lease.key],
                                                    args=[self.leases.replica, len(gaps)]):
            raise LeaseLost(stream)
        self.stats.duplicates_skipped += skipped
        self.stats.dead_lettered += len(rejected)
        if entries:
            self.stats.last_id[stream] = entries[-1].id
        return hwm

    def _start_spans(self, stream: str, messages: Sequence[Message], read_us: int) -> list[Span]:
        """A span per sampled message, child of the producer's; its context replaces the
        entry's in the headers, so the gateway's span is in turn a child of this one."""
        assert self._tracer is not None
        spans = []
        for message in messages:
            traceparent = message.headers.get(TRACEPARENT)
            if not sampled(traceparent):
                continue
            origin = int(message.headers.get(ORIGIN_TS, read_us))
            span = self._tracer.start_span(
                f"ingest {stream}", context=extract(traceparent, message.headers.get(TRACESTATE)),
                kind=SpanKind.PRODUCER, start_time=read_us * 1000,
                attributes={ATTR_SYSTEM: "nats", ATTR_DESTINATION: message.subject, ATTR_STREAM: stream,
                            ATTR_MESSAGE_ID: message.headers.get(MSG_ID, ""), ATTR_QUEUE_DELAY_US: read_us - origin})
            message.headers[TRACEPARENT] = traceparent_of(span)
            spans.append(span)
        return spans

    async def _publish(self, lease: Lease, messages: Sequence[Message]) -> None:
        """Publish in order until every message is acknowledged; retries resume at the first unacked.

        Re-publishing the acked tail after a failure keeps order: JetStream stores each Msg-Id's
        first arrival, and every attempt starts only once the one before it is over (see
        ``_publish_once``). Between attempts the lease is confirmed again, so a replica that
        lost it stops retrying.
        """
        start = 0
        backoff = Backoff()
        while start < len(messages):
            try:
                acked, sent = await self._publish_once(lease, messages[start:])
                start += acked
                if acked == sent:
                    continue  # the rest, or the part sent before nats.py flushed mid-batch
            except (TimeoutError, NatsError) as exc:
                raise_if_cancelled()
                self._set_failing(exc)
            self.stats.publish_retries += 1
            await self._pause(backoff.delay())
            await self.leases.confirm(lease)
        if self._failing and messages:
            self._failing = None
            log.info("jetstream: publishing again")

    async def _pause(self, delay: float) -> None:
        """Back off; while NATS is away, until it is back (re-publishing then only refills its buffer)."""
        await asyncio.sleep(delay)
        # nats.py offers nothing to await for a reconnection (its callbacks belong to open_nats).
        while not self.nc.is_connected and not self.nc.is_closed:  # noqa: ASYNC110
            await asyncio.sleep(BACKOFF_MIN)

    async def _publish_once(self, lease: Lease, messages: Sequence[Message]) -> tuple[int, int]:
        """Publish the front of ``messages`` in one piece; returns how many from the front were acked, and were sent.

        A piece is handed to nats.py at once, so it is all in one place, its buffer or the socket:
        a dropped connection can only lose its tail, never a middle part that the reconnect would
        send after later publishes, out of order in MD (issue 14 #4, tests/fault/test_ingest_nats_cut.py).
        Half the client's buffer at most, so a piece still fits in it while NATS is away.
        """
        if lease.expired():
            raise LeaseLost(lease.stream)
        sent: Sent | None = None
        try:
            sent = await self.publisher.publish(
                ((m.subject, m.payload, m.headers) for m in messages),
                self.settings.bus.nats_pending_bytes // 2)
            raise_if_cancelled()
            await asyncio.wait([sent.done], timeout=ACK_TIMEOUT)
        finally:
            if sent is not None:
                self.publisher.forget(sent)
        acked = 0
        error: BaseException | None = None
        for ack in sent.acks:
            if ack is None:
                error = error or TimeoutError("no publish ack")
            elif isinstance(ack, BaseException):
                error = error or ack
            elif error is None:
                acked += 1
                if ack:  # a duplicate
                    self.stats.jetstream_duplicates += 1
                else:
                    self.stats.published += 1
        if error is not None:
            self._set_failing(error)
        return acked, len(sent.acks)

    def _set_failing(self, exc: BaseException) -> None:
        if self._failing is not type(exc):
            self._failing = type(exc)
            log.warning("jetstream: publish failing (%s); retrying with the same Msg-Id",
                        str(exc) or type(exc).__name__)

    def _report_gap(self, stream: str, first_missing: str, count: int, where: str) -> None:
        """Entries trimmed from Redis before they were published: data lost upstream of us."""
        self.stats.trimmed += count
        self.stats.gaps += 1
        log.warning("gap: %d entries of %s from %s were trimmed before ingest read them (%s); notice published",
                    count, stream, first_missing, where)
