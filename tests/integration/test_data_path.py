"""The whole data path with real processes: Redis → ingest → JetStream → gateway → client."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict

import pytest
import redis.asyncio as aioredis
from tickwire_client import Message, TickwireClient

from tests.conftest import Backend
from tests.stack import Services
from tickwire.producer import add_entry

pytestmark = pytest.mark.slow


async def collect(client: TickwireClient, count: int, within: float = 60.0) -> list[Message]:
    """The next ``count`` messages, failing after ``within`` seconds."""
    got: list[Message] = []
    async with asyncio.timeout(within):
        while len(got) < count:
            got.append(await client.next(within))
    return got


async def test_entry_reaches_a_websocket_client(backend: Backend, services: Services) -> None:
    """1. start ingest and a gateway; 2. subscribe to ticks.AAPL; 3. XADD one entry by hand;
    4. the client gets it with the topic, entry ID, origin ts, data and a stream seq."""
    services.ingest()
    gateway = services.gateway()
    await gateway.ready()
    async with (
        aioredis.from_url(backend.redis_url) as redis,
        TickwireClient([gateway.ws_url], ["ticks.AAPL"]) as client,
    ):
        await asyncio.wait_for(client.subscribed.wait(), 10)
        await add_entry(redis, "ticks", {"bid": 189.1, "ask": 189.2}, symbol="MSFT", ts=1)
        entry_id = await add_entry(redis, "ticks", {"bid": 189.5, "ask": 189.6}, symbol="AAPL", ts=1764433200123456)
        msg = await client.next(20)
    assert (msg.topic, msg.id, msg.ts, msg.data) == (
        "ticks.AAPL",
        entry_id,
        1764433200123456,
        {"bid": 189.5, "ask": 189.6},
    )
    assert msg.seq == 2  # the MSFT entry took seq 1 and was not delivered to this subscription


async def test_order_over_ten_thousand_entries_and_two_replicas_agree(backend: Backend, services: Services) -> None:
    """1. two gateways, one ingest; 2. a client on each, subscribed to ticks.>;
    3. 10,000 entries over 20 symbols in one stream; 4. both clients get every entry once,
    in the stream's order, with the same seqs."""
    services.ingest()
    gateways = [services.gateway("gw-1"), services.gateway("gw-2")]
    await asyncio.gather(*(g.ready() for g in gateways))
    total = 10_000
    async with (
        aioredis.from_url(backend.redis_url) as redis,
        TickwireClient([gateways[0].ws_url], ["ticks.>"]) as a,
        TickwireClient([gateways[1].ws_url], ["ticks.>"]) as b,
    ):
        await asyncio.gather(a.subscribed.wait(), b.subscribed.wait())
        ids = []
        for start in range(0, total, 500):
            pipe = redis.pipeline(transaction=False)
            for i in range(start, start + 500):
                pipe.xadd("md:ticks", {"symbol": f"S{i % 20}", "data": f'{{"n":{i}}}'})
            ids += [x.decode() for x in await pipe.execute()]
        got_a, got_b = await asyncio.gather(collect(a, total), collect(b, total))
    assert [m.data["n"] for m in got_a] == list(range(total))
    assert [m.id for m in got_a] == ids
    assert [m.seq for m in got_a] == [m.seq for m in got_b]
    assert a.stats.node == "gw-1" and b.stats.node == "gw-2"
    assert a.stats.duplicates == 0 and b.stats.duplicates == 0


async def test_resume_with_since_across_a_disconnect(backend: Backend, services: Services) -> None:
    """1. a producer writes steadily; 2. the client's socket is cut three times;
    3. each time it resumes with since; 4. it gets every entry exactly once, in order."""
    services.ingest()
    gateway = services.gateway()
    await gateway.ready()
    total = 3000
    async with aioredis.from_url(backend.redis_url) as redis, TickwireClient([gateway.ws_url], ["trades.*"]) as client:
        await client.subscribed.wait()

        async def produce() -> None:
            for i in range(total):
                await add_entry(redis, "trades", {"n": i}, symbol=f"S{i % 7}")
                if i % 50 == 0:
                    await asyncio.sleep(0.005)

        producer = asyncio.create_task(produce())
        got: list[Message] = []
        for cut in (500, 1200, 2000):
            got += await collect(client, cut - len(got))
            # Messages may still be queued from before the last cut: cut a live socket.
            await client.connected.wait()
            await client.drop_connection()
        got += await collect(client, total - len(got))
        await producer
    assert [m.data["n"] for m in got] == list(range(total))
    assert client.stats.reconnects == 3


async def test_two_ingest_replicas_one_killed_mid_burst(backend: Backend, services: Services) -> None:
    """1. two ingest replicas split four streams; 2. a burst of 8,000 entries across them;
    3. one replica is killed -9 mid-burst; 4. the other takes its streams over and every entry
    reaches the client exactly once after dedup by seq, in per-stream order."""
    lease = {"TICKWIRE_LEASE_TTL": "1.5", "TICKWIRE_RESCAN_INTERVAL": "0.5"}
    ingests = [services.ingest("ingest-a", **lease), services.ingest("ingest-b", **lease)]
    gateway = services.gateway()
    await gateway.ready()
    channels = ["c1", "c2", "c3", "c4"]
    per_stream = 2000
    async with aioredis.from_url(backend.redis_url) as redis, TickwireClient([gateway.ws_url], [">"]) as client:
        await client.subscribed.wait()
        for ch in channels:  # create the streams so both replicas find them before the burst
            await redis.xadd(f"md:{ch}", {"data": '{"n":-1}'})
        first = await collect(client, len(channels))
        sent: dict[str, list[str]] = defaultdict(list)
        for i in range(per_stream):
            pipe = redis.pipeline(transaction=False)
            for ch in channels:
                pipe.xadd(f"md:{ch}", {"data": f'{{"n":{i}}}'})
            for ch, entry_id in zip(channels, await pipe.execute(), strict=True):
                sent[ch].append(entry_id.decode())
            if i == per_stream // 3:
                random.choice(ingests).kill()
            if i % 100 == 0:
                await asyncio.sleep(0.01)
        got = await collect(client, per_stream * len(channels), within=90)
    by_stream: dict[str, list[str]] = defaultdict(list)
    for m in first + got:
        by_stream[m.topic].append(m.id)
    for ch in channels:
        assert by_stream[ch][1:] == sent[ch], f"stream md:{ch} lost, duplicated or reordered entries"
    assert sum(1 for s in ingests if s.alive) == 1


async def test_entries_trimmed_before_ingest_read_them_become_a_gap_notice(
    backend: Backend, services: Services
) -> None:
    """1. ingest bridges a first entry, then stops; 2. 50 entries are XADDed and trimmed
    to 5 while it is away; 3. ingest starts again: the client on ticks.* gets a `gap`
    notice for `ticks` (never a silent loss), then the 5 entries that were left."""
    ingest = services.ingest()
    gateway = services.gateway()
    await gateway.ready()
    async with aioredis.from_url(backend.redis_url) as redis, TickwireClient([gateway.ws_url], ["ticks.*"]) as client:
        await client.subscribed.wait()
        await add_entry(redis, "ticks", {"n": -1}, symbol="A")
        assert (await client.next(20)).data == {"n": -1}
        assert ingest.stop() == 0
        for i in range(50):
            await add_entry(redis, "ticks", {"n": i}, symbol="A")
        await redis.xtrim("md:ticks", maxlen=5, approximate=False)
        services.ingest()
        got = await collect(client, 5)
    assert [m.data["n"] for m in got] == list(range(45, 50))
    assert client.stats.gaps == [{"type": "gap", "topic": "ticks", "reason": "trimmed"}]
