"""The fault suite's yardstick: a steady producer, clients that dedup by seq, and a verdict.

Each scenario runs ``Producer`` against the real stack, injects its fault, lets it
recover, stops producing and then asks every ``Observer`` whether each entry that Redis
acknowledged reached the application exactly once and in per-stream order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from tickwire_client import Message, TickwireClient

from services.hops import now_us
from tests.waiting import eventually


@dataclass
class Verdict:
    """One row of the suite's table."""

    scenario: str
    sent: int
    delivered: int
    lost: int
    duplicates: int
    order_violations: int
    recovery_s: float | None
    clients: int = 1
    note: str = ""
    missing: list[str] = field(default_factory=list)  # a few lost entries and who lost them, to debug

    def ok(self) -> bool:
        return self.lost == 0 and self.duplicates == 0 and self.order_violations == 0


@dataclass
class Producer:
    """XADDs ``rate`` entries/s round-robin over ``streams``; retries while Redis is away.

    Only entries Redis acknowledged (XADD returned an ID) are counted as sent.
    """

    redis_url: str
    streams: Sequence[str] = ("md:fa", "md:fb")
    rate: float = 400.0
    symbols: int = 5
    pad: int = 0  # extra bytes per entry, to fill a stalled client's socket buffers sooner
    sent: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    retries: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    @property
    def total(self) -> int:
        return sum(len(ids) for ids in self.sent.values())

    async def __aenter__(self) -> Producer:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def reach(self, count: int, within: float = 30.0) -> None:
        """Until at least ``count`` entries were acknowledged by Redis."""
        await eventually(lambda: self.total >= count, within, what=f"{count} entries acknowledged by Redis")

    async def _run(self) -> None:
        redis = aioredis.from_url(self.redis_url, socket_timeout=2, socket_connect_timeout=1)
        n = 0
        started = time.monotonic()
        try:
            while not self._stop.is_set():
                due = int((time.monotonic() - started) * self.rate)
                while n < due and not self._stop.is_set():
                    stream = self.streams[n % len(self.streams)]
                    data = f'{{"n":{n},"pad":"{"x" * self.pad}"}}' if self.pad else f'{{"n":{n}}}'
                    fields = {"symbol": f"S{n % self.symbols}", "data": data, "ts": str(now_us())}
                    try:
                        entry_id = await redis.xadd(stream, fields)  # type: ignore[arg-type]
                    except (RedisError, OSError):
                        # Not acknowledged: a real producer retries; it never counts as sent.
                        self.retries += 1
                        await asyncio.sleep(0.05)
                        continue
                    self.sent[stream].append(entry_id.decode())
                    n += 1
                await asyncio.sleep(0.005)
        finally:
            await redis.aclose()


SUBSCRIBE_WITHIN = 30.0


class Observer:
    """A client subscribed to ``>`` that keeps every message the application received."""

    def __init__(self, urls: Sequence[str], topics: Sequence[str] = (">",), **options: object) -> None:
        self.client = TickwireClient(urls, topics, **options)  # type: ignore[arg-type]
        self.received: list[Message] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Observer:
        """Connected and subscribed: an entry the gateway got before the subscribe would reach
        this client only as its topic's snapshot, and the verdict would count the older ones lost."""
        await self.client.__aenter__()
        self._task = asyncio.create_task(self._collect())
        try:
            await asyncio.wait_for(self.client.subscribed.wait(), SUBSCRIBE_WITHIN)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.close()

    async def _collect(self) -> None:
        async for message in self.client:
            self.received.append(message)

    def ids(self, stream: str) -> list[str]:
        topic = stream.removeprefix("md:")
        return [m.id for m in self.received if m.topic == topic or m.topic.startswith(topic + ".")]

    def first_after(self, origin_us: int) -> float | None:
        """Seconds from ``origin_us`` until the first message produced after it arrived."""
        later = [m.received_us for m in self.received if m.ts > origin_us]
        return (min(later) - origin_us) / 1e6 if later else None


@contextlib.asynccontextmanager
async def observing(observers: Sequence[Observer]) -> AsyncIterator[Sequence[Observer]]:
    """Every observer connected and subscribed (entered side by side), closed at the end."""
    entered = await asyncio.gather(*(o.__aenter__() for o in observers), return_exceptions=True)
    try:
        failed = next((e for e in entered if isinstance(e, BaseException)), None)
        if failed is not None:
            raise failed
        yield observers
    finally:
        await asyncio.gather(*(o.__aexit__() for o, e in zip(observers, entered, strict=True)
                               if not isinstance(e, BaseException)))


async def settle(producer: Producer, observers: Sequence[Observer], mark: int = 0, within: float = 60.0) -> None:
    """Until every observer holds each entry from per-stream index ``mark`` on, or the deadline:
    what is still missing then is the verdict's to report, not this wait's."""
    # Per stream, as the verdict counts them: two streams' entries added in the same
    # millisecond have the same ID, so one set of IDs over all streams would call a stream's
    # entry received when only its twin of the other stream was.
    wanted = {stream: set(ids[mark:]) for stream, ids in producer.sent.items()}

    def complete() -> bool:
        return all(ids <= set(o.ids(stream)) for o in observers for stream, ids in wanted.items())

    with contextlib.suppress(TimeoutError):
        await eventually(complete, within, every=0.1)


def judge(
    scenario: str, producer: Producer, observers: Sequence[Observer], fault_end_us: int | None, note: str = ""
) -> Verdict:
    """Lost, duplicated and out-of-order entries, summed over every observer."""
    lost = duplicates = disorder = delivered = 0
    missing: list[str] = []
    for observer in observers:
        for stream, sent in producer.sent.items():
            got = observer.ids(stream)
            received = set(got)
            delivered += len(got)
            duplicates += len(got) - len(received)
            gone = [entry_id for entry_id in sent if entry_id not in received]
            lost += len(gone)
            if gone and len(missing) < 5:
                missing.append(f"{stream} {gone[:3]} lost by a client with {observer.client.stats}")
            position = {entry_id: i for i, entry_id in enumerate(sent)}
            order = [position[i] for i in got if i in position]
            disorder += sum(1 for a, b in itertools.pairwise(order) if b <= a)
    recovery = None
    if fault_end_us is not None:
        times = [t for o in observers if (t := o.first_after(fault_end_us)) is not None]
        recovery = max(times) if times else None
    return Verdict(
        scenario, producer.total, delivered, lost, duplicates, disorder, recovery, len(observers), note, missing
    )
