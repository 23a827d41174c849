"""`tickwire ingest` processes: killed -9 or paused mid-burst, fed poison: nothing lost, nothing doubled, order kept."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

import httpx
import nats
import pytest
import redis.asyncio as aioredis
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from ingest.leases import MEMBERS_KEY, lease_key
from services.envelope import ENTRY_ID, MSG_ID
from tests.conftest import Backend
from tests.stack import Services
from tests.waiting import eventually
from tickwire.localservers import free_port

STREAMS = [f"md:p{i}" for i in range(4)]
ROUNDS = 1500  # entries per stream


async def test_kill_one_of_two_replicas_mid_burst(backend: Backend, services: Services) -> None:
    """1. start replicas ingest-1 and ingest-2 (lease TTL 2 s); 2. both join and split four streams;
    3. a producer XADDs a burst across the four; 4. kill -9 ingest-1 once MD holds a few hundred;
    5. every entry reaches MD exactly once by Tw-Id (and by raw count: Msg-Id dedup), in per-stream order."""
    extra = {"TICKWIRE_LEASE_TTL": "2", "TICKWIRE_RESCAN_INTERVAL": "0.2", "TICKWIRE_INGEST_BLOCK_MS": "100"}
    redis = aioredis.from_url(backend.redis_url)
    nc = await nats.connect(backend.nats_url)
    js = nc.jetstream()
    added: dict[str, list[str]] = {s: [] for s in STREAMS}
    try:
        for s in STREAMS:
            added[s].append((await redis.xadd(s, {"data": "0"})).decode())
        first = services.ingest("ingest-1", **extra)
        second = services.ingest("ingest-2", **extra)

        async def split() -> bool:
            holders = [await redis.get(lease_key(s)) for s in STREAMS]
            return await redis.zcard(MEMBERS_KEY) == 2 and Counter(holders) == {b"ingest-1": 2, b"ingest-2": 2}

        await eventually(split, within=30, every=0.1, what="two replicas splitting four streams")

        async def stored() -> int:
            return (await js.stream_info("MD")).state.messages

        async def at_least(n: int) -> bool:
            return await stored() >= n

        async def produce() -> None:
            for i in range(1, ROUNDS + 1):
                async with redis.pipeline(transaction=False) as pipe:
                    for s in STREAMS:
                        pipe.xadd(s, {"symbol": f"S{i % 5}", "data": str(i)})
                    for s, entry_id in zip(STREAMS, await pipe.execute(), strict=True):
                        added[s].append(entry_id.decode())

        async with asyncio.TaskGroup() as tg:
            tg.create_task(produce())
            await eventually(lambda: at_least(401), within=30, what="ingest publishing")
            assert first.alive and second.alive, first.log()[-2000:] + second.log()[-2000:]
            first.kill()
            assert len(added[STREAMS[-1]]) <= ROUNDS, "the burst ended before the kill: not mid-burst"
        total = sum(len(ids) for ids in added.values())
        await eventually(lambda: at_least(total), within=60, every=0.2, what=f"{total} entries in MD")
        assert second.alive, second.log()[-3000:]

        sub = await js.subscribe("md.>", ordered_consumer=True)
        msgs = [await sub.next_msg(timeout=10) for _ in range(await stored())]
        await sub.unsubscribe()
    finally:
        await nc.close()
        await redis.aclose()

    per_stream: dict[str, list[str]] = {}
    for msg in msgs:
        assert msg.headers is not None
        per_stream.setdefault(msg.headers[MSG_ID].rsplit(":", 1)[0], []).append(msg.headers[ENTRY_ID])
    unique = Counter(msg.headers[MSG_ID] for msg in msgs if msg.headers)
    assert len(unique) == total, "entries lost"
    assert len(msgs) == total, f"{len(msgs) - total} raw duplicates in MD"
    assert per_stream == added


async def read_all(js: JetStreamContext) -> list[Msg]:
    total = (await js.stream_info("MD")).state.messages
    sub = await js.subscribe("md.>", ordered_consumer=True)
    try:
        return [await sub.next_msg(timeout=10) for _ in range(total)]
    finally:
        await sub.unsubscribe()


def entries_per_stream(msgs: list[Msg]) -> dict[str, list[str]]:
    per_stream: dict[str, list[str]] = {}
    for msg in msgs:
        assert msg.headers is not None
        per_stream.setdefault(msg.headers[MSG_ID].rsplit(":", 1)[0], []).append(msg.headers[ENTRY_ID])
    return per_stream


@pytest.mark.slow
async def test_replica_paused_beyond_the_duplicate_window_publishes_nothing_twice(
    backend: Backend, services: Services
) -> None:
    """1. stream MD with a 2 s duplicate window, lease TTL 1 s; replicas A and B split two streams;
    2. a producer XADDs steadily to both; 3. A is SIGSTOPped for 4 s (past its lease and the
    window): B takes A's stream over; 4. A gets SIGCONT and resumes mid-flight; 5. after the
    producer stops and all drains, MD holds every entry exactly once (by Tw-Id), in order."""
    streams = ["md:s0", "md:s1"]
    extra = {
        "TICKWIRE_LEASE_TTL": "1",
        "TICKWIRE_DUPLICATE_WINDOW": "2",
        "TICKWIRE_RESCAN_INTERVAL": "0.2",
        "TICKWIRE_INGEST_BLOCK_MS": "100",
    }
    redis = aioredis.from_url(backend.redis_url)
    nc = await nats.connect(backend.nats_url)
    js = nc.jetstream()
    added: dict[str, list[str]] = {s: [] for s in streams}
    producing = asyncio.Event()
    try:
        for s in streams:
            added[s].append((await redis.xadd(s, {"data": "0"})).decode())
        a = services.ingest("ingest-a", **extra)
        b = services.ingest("ingest-b", **extra)

        async def holders() -> Counter[bytes | None]:
            return Counter([await redis.get(lease_key(s)) for s in streams])

        async def split() -> bool:
            return await holders() == {b"ingest-a": 1, b"ingest-b": 1}

        await eventually(split, within=30, every=0.1, what="A and B holding one stream each")

        async def produce() -> None:
            i = 0
            while producing.is_set():
                i += 1
                for s in streams:
                    added[s].append((await redis.xadd(s, {"symbol": f"S{i % 3}", "data": str(i)})).decode())
                await asyncio.sleep(0.005)  # a steady rate, not synchronisation

        producing.set()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(produce())
            await eventually(lambda: sum(map(len, added.values())) > 200, what="producer running")
            a.send(signal.SIGSTOP)
            try:
                await eventually(lambda: holders_are(redis, streams, b"ingest-b"), within=10, what="B holds both")
                await asyncio.sleep(4)  # scenario: A stays paused past its lease and the duplicate window
            finally:
                a.send(signal.SIGCONT)
            await eventually(split, within=20, every=0.1, what="A back with one stream")
            producing.clear()
        total = sum(len(ids) for ids in added.values())

        async def drained() -> bool:
            return (await js.stream_info("MD")).state.messages >= total

        await eventually(drained, within=30, every=0.2, what=f"{total} entries in MD")
        assert a.alive and b.alive, a.log()[-2000:] + b.log()[-2000:]
        msgs = await read_all(js)
    finally:
        await nc.close()
        await redis.aclose()
    unique = Counter((m.headers or {})[ENTRY_ID] + (m.headers or {})[MSG_ID] for m in msgs)
    assert max(unique.values()) == 1, "an entry stored twice"
    assert len(msgs) == total
    assert entries_per_stream(msgs) == added


async def holders_are(redis: aioredis.Redis, streams: list[str], replica: bytes) -> bool:
    return all([await redis.get(lease_key(s)) == replica for s in streams])


async def test_poison_entries_mid_burst_are_dead_lettered_and_the_rest_flows(
    backend: Backend, services: Services
) -> None:
    """1. a `tickwire ingest` process with its metrics port on; 2. a burst of 400 entries with a 2 MB
    entry and one whose data is not JSON in the middle; 3. both land in tickwire:dead with their
    reason; every other entry is in MD, in order; /metrics counts 2 dead-lettered and 400 - 2 published."""
    port = free_port()
    ingest = services.ingest(
        "ingest-1",
        TICKWIRE_INGEST_METRICS_PORT=str(port),
        TICKWIRE_INGEST_BLOCK_MS="100",
        TICKWIRE_RESCAN_INTERVAL="0.2",
    )
    redis = aioredis.from_url(backend.redis_url)
    nc = await nats.connect(backend.nats_url)
    js = nc.jetstream()
    try:
        async with httpx.AsyncClient() as http:

            async def ready() -> bool:
                try:
                    return (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
                except httpx.TransportError:
                    assert ingest.alive, ingest.log()[-3000:]
                    return False

            await eventually(ready, within=20, every=0.05, what="ingest ready")
            fields: list[dict[str, str]] = [{"symbol": "AAPL", "data": str(i)} for i in range(400)]
            fields[150] = {"symbol": "AAPL", "data": '"' + "x" * (2 * 1024 * 1024) + '"'}
            fields[151] = {"symbol": "AAPL", "data": "{broken"}
            async with redis.pipeline(transaction=False) as pipe:
                for f in fields:
                    pipe.xadd("md:ticks", f)  # type: ignore[arg-type]
                ids = [entry_id.decode() for entry_id in await pipe.execute()]

            async def metrics() -> str:
                return (await http.get(f"http://127.0.0.1:{port}/metrics")).text

            async def done() -> bool:
                text = await metrics()
                return "tickwire_ingest_published_total 398.0" in text

            await eventually(done, within=20, every=0.1, what="398 published")
            assert "tickwire_ingest_dead_lettered_total 2.0" in await metrics()
        dead = await redis.xrange("tickwire:dead")
        msgs = await read_all(js)
    finally:
        await nc.close()
        await redis.aclose()
    assert [(f[b"id"].decode(), f[b"reason"].decode()) for _, f in dead] == [
        (ids[150], "too large"),
        (ids[151], "data is not JSON"),
    ]
    assert entries_per_stream(msgs) == {"md:ticks": ids[:150] + ids[152:]}
