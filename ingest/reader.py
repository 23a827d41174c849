"""Reading one Redis stream through the consumer group: pending entries first, then new ones.

All replicas share one consumer name per stream (``bridge``): only the lease holder reads,
so the pending list is exactly what earlier holders read and did not acknowledge. New
entries are claimed (``>``) by a Lua script that checks the lease in the same atomic step:
a replica that lost its lease cannot move entries into the pending list after the new
holder has re-read it, which would strand them until the next takeover.

The same script notices entries trimmed before the group read them (design §1). Redis
7.0 keeps counting them in the group's ``lag`` (entries-added − entries-read), and a trim
removes the oldest entries first, so unread entries were trimmed exactly when ``lag`` exceeds
the stream's length. The script then records the gap in ``tickwire:gaps:<stream>`` (so a
crash before the notice is published cannot make it silent) and corrects the group's
entries-read with ``XGROUP SETID … ENTRIESREAD`` (so the gap is counted once, and ``lag``
is true again for the metric).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from ingest.leases import LeaseLost, lease_key
from ingest.mapping import entry_key, format_key

CONSUMER = "bridge"
GAPS_PREFIX = "tickwire:gaps:"


def gaps_key(stream: str) -> str:
    return f"{GAPS_PREFIX}{stream}"


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry as read; empty ``fields`` means it was trimmed before anyone read it."""

    id: str
    fields: dict[bytes, bytes]

    @property
    def trimmed(self) -> bool:
        return not self.fields


@dataclass(frozen=True, slots=True)
class Gap:
    """``count`` entries after ``after`` were trimmed from the stream before the group read them."""

    after: str
    count: int

    @property
    def first_missing(self) -> str:
        """The smallest ID a missing entry can have: names the gap in its notice's Msg-Id."""
        ms, seq = entry_key(self.after)
        return format_key((ms, seq + 1))

    def encode(self) -> str:
        return f"{self.after} {self.count}"

    @classmethod
    def decode(cls, raw: bytes | str) -> Gap:
        after, count = _text(raw).split()
        return cls(after, int(count))


# XREADGROUP cannot BLOCK inside a script, so when nothing is new the script returns the
# stream's last ID and the reader waits on a plain XREAD from there (no side effects).
# XINFO GROUPS' ``lag`` is nil when Redis cannot count it (deleted entries ahead): no check then.
_CLAIM_NEW = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  if f['name'] == ARGV[2] and f['lag'] then
    local len = redis.call('XLEN', KEYS[1])
    if f['lag'] > len then
      local s = redis.call('XINFO', 'STREAM', KEYS[1])
      local added
      for i = 1, #s, 2 do if s[i] == 'entries-added' then added = s[i + 1] end end
      redis.call('XGROUP', 'SETID', KEYS[1], ARGV[2], f['last-delivered-id'], 'ENTRIESREAD', added - len)
      redis.call('RPUSH', KEYS[3], f['last-delivered-id'] .. ' ' .. (f['lag'] - len))
    end
  end
end
local gaps = redis.call('LRANGE', KEYS[3], 0, -1)
local r = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', ARGV[4], 'STREAMS', KEYS[1], '>')
if r then return {1, r[1][2], gaps} end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if last[1] then return {0, last[1][1], gaps} end
return {0, '0-0', gaps}
"""


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _entries(reply: Any) -> list[Entry]:
    """XREADGROUP's reply for our one stream (RESP2 list or RESP3 dict) as entries."""
    if not reply:
        return []
    per_stream = list(reply.values()) if isinstance(reply, dict) else [entries for _, entries in reply]
    # redis-py parses a trimmed entry's nil field list to {} (and an unknown ID to None).
    return [Entry(_text(entry_id), dict(fields or {})) for entry_id, fields in per_stream[0] if entry_id is not None]


def _script_entries(raw: list[list[Any]]) -> list[Entry]:
    """The claim script's reply: ``[[id, [field, value, …]], …]`` as bytes (a Lua script's
    reply is not parsed by redis-py)."""
    entries = []
    for entry_id, flat in raw:
        pairs = iter(flat)  # one iterator twice: field, value, field, value…
        entries.append(Entry(entry_id.decode(), dict(zip(pairs, pairs, strict=True))))
    return entries


class StreamReader:
    """XREADGROUP on one stream for the replica holding its lease."""

    def __init__(self, redis: aioredis.Redis, stream: str, *, group: str, replica: str, batch: int,
                 block_ms: int) -> None:
        self.redis = redis
        self.stream = stream
        self.group = group
        self.replica = replica
        self.batch = batch
        self.block_ms = block_ms
        self._lease_key = lease_key(stream)
        self._gaps_key = gaps_key(stream)
        self._claim_new = redis.register_script(_CLAIM_NEW)

    async def ensure_group(self) -> None:
        """Create the group at ID 0 (the whole stream is unread for a new group)."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def pending(self, after: str) -> list[Entry]:
        """Up to one batch of entries already delivered to the shared consumer, IDs > ``after``."""
        reply: Any = await self.redis.xreadgroup(self.group, CONSUMER, {self.stream: after}, count=self.batch)
        return _entries(reply)

    async def gaps(self) -> list[Gap]:
        """Gaps recorded and not yet announced (a former holder may have died before announcing)."""
        return [Gap.decode(raw) for raw in await self.redis.lrange(self._gaps_key, 0, -1)]

    async def new(self) -> tuple[list[Entry], list[Gap]]:
        """Up to one batch of never-delivered entries, waiting up to ``block_ms`` for some,
        and every gap recorded and not yet announced (those come before the entries).

        Raises LeaseLost when the lease is no longer ours.
        """
        entries, last_id, gaps = await self._claim()
        if entries or gaps:
            return entries, gaps
        await self.redis.xread({self.stream: last_id}, count=1, block=self.block_ms)
        entries, _, gaps = await self._claim()
        return entries, gaps

    async def _claim(self) -> tuple[list[Entry], str, list[Gap]]:
        """New entries, or none and the stream's last ID to wait from; and the recorded gaps."""
        reply = await self._claim_new(
            keys=[self.stream, self._lease_key, self._gaps_key], args=[self.replica, self.group, CONSUMER, self.batch]
        )
        if reply is None:
            raise LeaseLost(self.stream)
        found, value, raw_gaps = reply
        gaps = [Gap.decode(raw) for raw in raw_gaps]
        if found:
            return _script_entries(value), "", gaps
        return [], _text(value), gaps
