"""Two `tickwire ingest` processes, one killed -9 mid-burst: nothing lost, nothing doubled, order kept."""

from __future__ import annotations

import asyncio
from collections import Counter

import nats
import redis.asyncio as aioredis

from ingest.leases import MEMBERS_KEY, lease_key
from services.envelope import ENTRY_ID, MSG_ID
from tests.conftest import Backend
from tests.stack import Services
from tests.waiting import eventually

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

