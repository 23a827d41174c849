"""One stream, one lease: re-read the pending list, then bridge new entries until told to stop.

Stopping is either graceful (``stop()``: finish the batch in hand, release the lease) or
abrupt (the owner cancels the task when the lease is lost: reading stops at once, and the
pending list keeps whatever was in flight for the next holder).
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ingest.bridge import Bridge
from ingest.leases import Lease, LeaseLost, Leases
from ingest.links import Link
from ingest.publisher import raise_if_cancelled
from ingest.reader import StreamReader
from services.backoff import Backoff, pause

log = logging.getLogger(__name__)


class StreamWorker:
    """Bridges ``lease.stream`` while the lease is held."""

    def __init__(self, lease: Lease, reader: StreamReader, bridge: Bridge, leases: Leases, redis_link: Link) -> None:
        self.lease = lease
        self.reader = reader
        self.bridge = bridge
        self.leases = leases
        self.redis_link = redis_link
        self._stopping = asyncio.Event()
        self._failing = False  # an error other than Redis being away, logged once per streak

    @property
    def stream(self) -> str:
        return self.lease.stream

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Finish the batch in hand, then release the lease (within ``block_ms`` when idle)."""
        self._stopping.set()

    async def run(self) -> None:
        backoff = Backoff()
        while not self.stopping:
            try:
                await self._bridge()
            except LeaseLost:
                log.warning("lease on %s lost: stopped reading it", self.stream)
                return
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                # Redis away: one line for the whole replica, from the shared link.
                self.redis_link.failed(exc)
            except RedisError as exc:
                if not self._failing:
                    log.warning("redis: bridging %s failed (%s); retrying", self.stream, exc)
                    self._failing = True
            # Interruptible backoff: a stop request must not wait out the delay.
            await pause(self._stopping, backoff.delay())
        try:
            await self.leases.release(self.lease)
            log.info("released %s", self.stream)
        except (RedisError, OSError) as exc:
            log.warning("could not release %s (%s): it expires in %.1fs", self.stream, exc, self.leases.ttl)

    async def _bridge(self) -> None:
        """Recorded gaps, then the pending list (a former holder's unacknowledged reads), then new entries.

        Returns only when asked to stop.
        """
        hwm = await self.bridge.load_hwm(self.stream)
        await self.reader.ensure_group()
        if self._failing:
            self._failing = False
            log.info("redis: bridging %s again", self.stream)
        gaps = await self.reader.gaps()
        if gaps:
            hwm = await self.bridge.handle(self.lease, [], hwm, gaps)
        cursor = "0"
        while not self.stopping:
            entries = await self.reader.pending(cursor)
            if not entries:
                break
            hwm = await self.bridge.handle(self.lease, entries, hwm)
            raise_if_cancelled()
            cursor = entries[-1].id
        while not self.stopping:
            entries, gaps = await self.reader.new()
            if entries or gaps:
                hwm = await self.bridge.handle(self.lease, entries, hwm, gaps)
            raise_if_cancelled()
