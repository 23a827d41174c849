"""Publish a batch to JetStream, wait for every ack, then XACK it and advance the high-water mark.

Order of effects per batch (design §1): lease confirmed → each new entry published with
``Nats-Msg-Id`` (pipelined) → all acks awaited → dead letters written → one XACK for the
whole batch → high-water mark raised, only while the lease is still ours. Nothing is XACKed
before JetStream acknowledged it; a failed or timed-out publish is retried with the same
Msg-Id (a timed-out publish may have been stored: JetStream drops the duplicate).

The high-water mark (``tickwire:hwm:<stream>``) is the highest entry ID handled (published,
dead-lettered or reported trimmed). JetStream's duplicate window is short; the mark makes
a re-delivery of any age a no-op.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import redis.asyncio as aioredis
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import PubAck
from redis.typing import EncodableT, FieldT

from ingest.leases import Lease, LeaseLost, Leases
from ingest.mapping import EntryKey, Message, Rejected, entry_key, format_key, map_entry
from ingest.reader import Entry
from ingest.stats import IngestStats
from services.envelope import PUBLISH_TS
from services.hops import now_us
from services.settings import IngestSettings

log = logging.getLogger(__name__)

HWM_PREFIX = "tickwire:hwm:"
ACK_TIMEOUT = 5.0  # nats.py's own js.publish default
BACKOFF_MIN = 0.1
BACKOFF_MAX = 2.0
DEAD_LETTER_FIELD_BYTES = 4096
DEAD_LETTER_MAXLEN = 100_000  # approximate trim: the dead-letter stream must not grow forever

_ADVANCE_HWM = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
local cur = redis.call('GET', KEYS[1])
if cur then
  local cms, cseq = string.match(cur, '^(%d+)-(%d+)$')
  local nms, nseq = string.match(ARGV[2], '^(%d+)-(%d+)$')
  cms, cseq, nms, nseq = tonumber(cms), tonumber(cseq), tonumber(nms), tonumber(nseq)
  if cms and (nms < cms or (nms == cms and nseq <= cseq)) then return 1 end
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


def raise_if_cancelled() -> None:
    """Give back a cancellation nats.py swallowed.

    nats.py 2.16 catches CancelledError inside publish: ``publish_async`` turns it into
    TooManyStalledMsgsError, ``Client._flush_pending`` drops it. Without this check a
    cancelled worker (lease lost, crash simulation, shutdown past its grace) keeps publishing.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def hwm_key(stream: str) -> str:
    return f"{HWM_PREFIX}{stream}"


class Bridge:
    """Shared by every stream worker of one replica (one JetStream context, one retry state)."""

    def __init__(self, redis: aioredis.Redis, nc: NATS, js: JetStreamContext, leases: Leases,
                 settings: IngestSettings, stats: IngestStats) -> None:
        self.redis = redis
        self.nc = nc
        self.js = js
        self.leases = leases
        self.settings = settings
        self.stats = stats
        self._advance = redis.register_script(_ADVANCE_HWM)
        self._failing = False  # publish state, logged on change rather than per retry

    async def load_hwm(self, stream: str) -> EntryKey:
        raw = await self.redis.get(hwm_key(stream))
        if not raw:
            return (0, 0)
        return entry_key(raw.decode() if isinstance(raw, bytes) else raw)

    async def handle(self, lease: Lease, entries: Sequence[Entry], hwm: EntryKey) -> EntryKey:
        """Process one batch read from ``lease.stream``; returns the new high-water mark."""
        stream = lease.stream
        read_us = now_us()
        max_message = self.nc.max_payload
        messages: list[Message] = []
        rejected: list[tuple[Rejected, Entry]] = []
        trimmed: list[str] = []
        skipped = 0
        for entry in entries:
            if entry.trimmed:
                trimmed.append(entry.id)
                continue
            if entry_key(entry.id) <= hwm:
                skipped += 1
                continue
            mapped = map_entry(stream, entry.id, entry.fields, prefix=self.settings.bus.subject_prefix,
                               read_us=read_us, max_payload=self.settings.max_payload, max_message=max_message)
            if isinstance(mapped, Rejected):
                rejected.append((mapped, entry))
            else:
                messages.append(mapped)

        await self.leases.confirm(lease)
        await self._publish(messages)
        if rejected:
            await self._dead_letter(stream, rejected)
        if trimmed:
            self._report_gap(stream, trimmed)
        await self.redis.xack(stream, self.settings.group, *(entry.id for entry in entries))

        top = max((entry_key(entry.id) for entry in entries), default=hwm)
        if top > hwm:
            if not await self._advance(keys=[hwm_key(stream), lease.key], args=[self.leases.replica, format_key(top)]):
                raise LeaseLost(stream)
            hwm = top
        self.stats.duplicates_skipped += skipped
        self.stats.dead_lettered += len(rejected)
        if entries:
            self.stats.last_id[stream] = entries[-1].id
        return hwm

    async def _publish(self, messages: Sequence[Message]) -> None:
        """Publish in order until every message is acknowledged; retries resume at the first unacked.

        Re-publishing the acked tail after a failure keeps order: JetStream stores each Msg-Id's
        first arrival, and one connection delivers our publishes in order.
        """
        start = 0
        delay = BACKOFF_MIN
        while start < len(messages):
            try:
                start += await self._publish_once(messages[start:])
            except (TimeoutError, NatsError) as exc:
                raise_if_cancelled()
                self._set_failing(exc)
            if start < len(messages):
                self.stats.publish_retries += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
        if self._failing and messages:
            self._failing = False
            log.info("jetstream: publishing again")

    async def _publish_once(self, messages: Sequence[Message]) -> int:
        """Publish ``messages`` pipelined; returns how many from the front were acknowledged."""
        futures: list[asyncio.Future[PubAck]] = []
        try:
            for message in messages:
                headers = {**message.headers, PUBLISH_TS: str(now_us())}
                futures.append(await self.js.publish_async(message.subject, message.payload,
                                                           wait_stall=ACK_TIMEOUT, headers=headers))
                raise_if_cancelled()
            if futures:
                await asyncio.wait(futures, timeout=ACK_TIMEOUT)
        finally:
            for future in futures:
                future.cancel()  # no-op on done ones; frees the client's slot for the rest
        acked = 0
        error: BaseException | None = None
        for future in futures:
            if future.cancelled():
                error = error or TimeoutError("no publish ack")
                continue
            exc = future.exception()  # retrieved for every future, so none is logged as unretrieved
            if exc is not None:
                error = error or exc
            elif error is None:
                acked += 1
                if future.result().duplicate:
                    self.stats.jetstream_duplicates += 1
                else:
                    self.stats.published += 1
        if error is not None:
            self._set_failing(error)
        return acked

    def _set_failing(self, exc: BaseException) -> None:
        if not self._failing:
            self._failing = True
            log.warning("jetstream: publish failing (%s); retrying with the same Msg-Id",
                        str(exc) or type(exc).__name__)

    async def _dead_letter(self, stream: str, rejected: Sequence[tuple[Rejected, Entry]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for reason, entry in rejected:
                fields: dict[FieldT, EncodableT] = {
                    (b"original:" + k if k in (b"stream", b"id", b"reason") else k): v[:DEAD_LETTER_FIELD_BYTES]
                    for k, v in entry.fields.items()
                }
                fields.update({"stream": stream, "id": entry.id, "reason": reason.reason})
                pipe.xadd(self.settings.dead_letter_stream, fields, maxlen=DEAD_LETTER_MAXLEN, approximate=True)
                log.warning("dead letter: %s %s: %s", stream, entry.id, reason.reason)
            await pipe.execute()

    def _report_gap(self, stream: str, entry_ids: Sequence[str]) -> None:
        """Entries trimmed from Redis before they were published: data lost upstream of us.

        Seam for the ``gap`` notice (design §2): publish a message with header Tw-Gap here.
        """
        self.stats.trimmed += len(entry_ids)
        log.warning("gap: %d entries of %s were trimmed before ingest read them (%s … %s)",
                    len(entry_ids), stream, entry_ids[0], entry_ids[-1])
