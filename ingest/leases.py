"""Stream leases and replica membership in Redis: one reader per stream, streams split fairly.

A lease is ``tickwire:lease:<stream>`` = replica id, set with NX and a TTL and renewed at a
third of it; only compare-and-act Lua scripts touch a held lease, so a replica never
extends or deletes a lease another replica took after its own expired. Live replicas
heartbeat into a ZSET scored by expiry (Redis server time, so replicas' clocks do not
matter); each holds at most ``quota(streams, members)`` leases.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

LEASE_PREFIX = "tickwire:lease:"
MEMBERS_KEY = "tickwire:ingest:members"

# Acquire, or keep a lease this replica already holds (same id restarted within the TTL).
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Server time for expiry scores: Redis 7 replicates script effects, so TIME before writes is allowed.
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""


class LeaseLost(Exception):
    """The lease on a stream is no longer this replica's: stop reading it at once."""


def lease_key(stream: str) -> str:
    return f"{LEASE_PREFIX}{stream}"


def quota(streams: int, members: int) -> int:
    """Most leases one replica may hold so that live replicas split the streams."""
    return math.ceil(streams / max(1, members))


@dataclass
class Lease:
    """A lease this replica holds, with the local deadline past which it must assume it lost it."""

    stream: str
    key: str
    valid_until: float

    def expired(self) -> bool:
        return time.monotonic() >= self.valid_until


class Leases:
    """Acquire, renew, confirm and release stream leases, and heartbeat membership."""

    def __init__(self, redis: aioredis.Redis, replica: str, ttl: float) -> None:
        self.redis = redis
        self.replica = replica
        self.ttl = ttl
        self._ttl_ms = max(1, int(ttl * 1000))
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._heartbeat = redis.register_script(_HEARTBEAT)

    async def heartbeat(self) -> int:
        """Announce this replica for one TTL, prune dead ones; returns the live member count."""
        return int(await self._heartbeat(keys=[MEMBERS_KEY], args=[self.replica, self._ttl_ms]))

    async def leave(self) -> None:
        await self.redis.zrem(MEMBERS_KEY, self.replica)

    async def acquire(self, stream: str) -> Lease | None:
        key = lease_key(stream)
        started = time.monotonic()
        if not await self._acquire(keys=[key], args=[self.replica, self._ttl_ms]):
            return None
        return Lease(stream, key, started + self.ttl)

    async def renew(self, lease: Lease) -> bool:
        """Extend the lease if it is still ours; the local deadline counts from before the call."""
        started = time.monotonic()
        if not await self._renew(keys=[lease.key], args=[self.replica, self._ttl_ms]):
            return False
        lease.valid_until = started + self.ttl
        return True

    async def confirm(self, lease: Lease) -> None:
        """Raise LeaseLost unless the lease is still ours (renewing it on the way)."""
        if not await self.renew(lease):
            raise LeaseLost(lease.stream)

    async def release(self, lease: Lease) -> None:
        await self._release(keys=[lease.key], args=[self.replica])
