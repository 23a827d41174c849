"""The dead-letter stream: entries that can never be published, kept with the reason why."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from ingest.mapping import Rejected
from ingest.reader import Entry

log = logging.getLogger(__name__)

FIELD_BYTES = 4096  # of each original field: a poison entry may be huge
MAXLEN = 100_000  # approximate trim: the dead-letter stream must not grow forever
# Our fields; an entry's own fields of these names are kept as ``original:<name>``.
OWN = (b"stream", b"id", b"reason")


async def dead_letter(redis: aioredis.Redis, into: str, stream: str,
                      rejected: Sequence[tuple[Rejected, Entry]]) -> None:
    """Append each rejected entry of ``stream`` to the dead-letter stream ``into``, one line logged each."""
    async with redis.pipeline(transaction=False) as pipe:
        for reason, entry in rejected:
            fields: dict[FieldT, EncodableT] = {
                (b"original:" + k if k in OWN else k): v[:FIELD_BYTES] for k, v in entry.fields.items()
            }
            fields.update({"stream": stream, "id": entry.id, "reason": reason.reason})
            pipe.xadd(into, fields, maxlen=MAXLEN, approximate=True)
            log.warning("dead letter: %s %s: %s", stream, entry.id, reason.reason)
        await pipe.execute()
