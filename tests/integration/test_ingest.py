"""ingest in-process against real Redis and NATS: publish, ack, order, dedup, dead letters, leases."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator

import nats
import orjson
import redis.asyncio as aioredis
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from ingest.bridge import hwm_key
from ingest.mapping import entry_key
from ingest.reader import CONSUMER
from ingest.service import Ingest
from services.envelope import ENTRY_ID, GAP, MSG_ID, ORIGIN_TS, PUBLISH_TS, READ_TS, TRACEPARENT
from services.settings import BusSettings, IngestSettings
from tests.conftest import Backend
from tests.waiting import eventually

TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def settings(backend: Backend, replica: str = "a", bus: BusSettings | None = None, **kw: object) -> IngestSettings:
    return IngestSettings(
        **{"bus": bus or backend.bus(), "replica": replica, "lease_ttl": 1.5, "rescan_interval": 0.2, "block_ms": 100,
           **kw}
    )


@contextlib.asynccontextmanager
async def running(config: IngestSettings) -> AsyncIterator[tuple[Ingest, asyncio.Task[None]]]:
    """An Ingest in a task; stopped gracefully at the end unless the test already ended it."""
    ingest = Ingest(config)
    stop = asyncio.Event()
    task = asyncio.create_task(ingest.run(stop))
    try:
        await eventually(lambda: ingest.started.is_set() or task.done(), what="ingest started")
        if task.done():
            task.result()
        yield ingest, task
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)


@contextlib.asynccontextmanager
async def clients(backend: Backend) -> AsyncIterator[tuple[aioredis.Redis, JetStreamContext]]:
    redis = aioredis.from_url(backend.redis_url)
    nc = await nats.connect(backend.nats_url)
    try:
        yield redis, nc.jetstream()
    finally:
        await nc.close()
        await redis.aclose()


async def stored_count(js: JetStreamContext) -> int:
    try:
        return (await js.stream_info("MD")).state.messages
    except nats.js.errors.NotFoundError:
        return 0


async def stored(js: JetStreamContext) -> list[Msg]:
    """Every message in stream MD, in stream order (an ordered consumer from the start)."""
    total = await stored_count(js)
    sub = await js.subscribe("md.>", ordered_consumer=True)
    try:
        return [await sub.next_msg(timeout=10) for _ in range(total)]
    finally:
        await sub.unsubscribe()


async def pending(redis: aioredis.Redis, stream: str, group: str = "tickwire") -> int:
    return int((await redis.xpending(stream, group))["pending"])


def by_stream(msgs: list[Msg]) -> dict[str, list[str]]:
    """Entry IDs per Redis stream, in stream order (Nats-Msg-Id is '<stream>:<entry id>')."""
    out: dict[str, list[str]] = {}
    for msg in msgs:
        assert msg.headers is not None
        stream = msg.headers[MSG_ID].rsplit(":", 1)[0]
        out.setdefault(stream, []).append(msg.headers[ENTRY_ID])
    return out


async def test_entries_are_published_with_subject_payload_headers_then_acked(backend: Backend) -> None:
    """1. XADD a structured entry (symbol, data, ts, traceparent) to md:ticks and a flat one to md:trades;
    2. run ingest; 3. both are in stream MD on md.ticks.AAPL / md.trades with their headers;
    4. the group has nothing pending (XACKed after the publish ack)."""
    async with clients(backend) as (redis, js):
        tick_id = (
            await redis.xadd(
                "md:ticks", {"symbol": "AAPL", "data": '{"bid": 1.5}', "ts": "1764433200123456", "traceparent": TRACE}
            )
        ).decode()
        trade_id = (await redis.xadd("md:trades", {"px": "10", "qty": "3"})).decode()
        async with running(settings(backend)) as (ingest, _):
            await eventually(lambda: ingest.stats.published == 2, what="2 published")
            await eventually(lambda: ingest.stats.last_id.get("md:trades") == trade_id, what="trades acked")
            assert await pending(redis, "md:ticks") == 0 and await pending(redis, "md:trades") == 0
        msgs = {m.subject: m for m in await stored(js)}
    assert set(msgs) == {"md.ticks.AAPL", "md.trades"}
    tick, trade = msgs["md.ticks.AAPL"], msgs["md.trades"]
    assert tick.data == b'{"bid":1.5}' and orjson.loads(trade.data) == {"px": "10", "qty": "3"}
    assert tick.headers is not None and trade.headers is not None
    assert tick.headers[MSG_ID] == f"md:ticks:{tick_id}" and tick.headers[ENTRY_ID] == tick_id
    assert tick.headers[ORIGIN_TS] == "1764433200123456" and tick.headers[TRACEPARENT] == TRACE
    assert trade.headers[ORIGIN_TS] == str(entry_key(trade_id)[0] * 1000)
    assert int(tick.headers[READ_TS]) <= int(tick.headers[PUBLISH_TS])


async def test_ten_thousand_entries_keep_per_stream_order(backend: Backend) -> None:
    """1. XADD 10,000 entries alternating over md:ticks and md:trades; 2. run ingest;
    3. MD holds each exactly once, each stream's entries in XADD order; nothing pending."""
    total = 10_000
    async with clients(backend) as (redis, js):
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(total):
                pipe.xadd("md:ticks" if i % 2 else "md:trades", {"symbol": f"S{i % 7}", "data": str(i)})
            added = [entry_id.decode() for entry_id in await pipe.execute()]
        expected = {"md:trades": added[0::2], "md:ticks": added[1::2]}
        async with running(settings(backend)) as (ingest, _):
            await eventually(lambda: ingest.stats.published == total, within=60, what="all published")
            await eventually(
                lambda: all(ingest.stats.last_id.get(s) == ids[-1] for s, ids in expected.items()), what="all acked"
            )
            assert await pending(redis, "md:ticks") == 0 and await pending(redis, "md:trades") == 0
        assert by_stream(await stored(js)) == expected


async def test_high_water_mark_stops_a_late_redelivery(backend: Backend) -> None:
    """1. a 1 s duplicate window; 2. five entries published and acked; 3. wait until JetStream
    no longer de-duplicates (a probe Msg-Id is accepted twice); 4. rewind the group (XGROUP SETID 0)
    so Redis re-delivers all five; 5. ingest skips them: MD still holds them once."""
    bus = backend.bus().model_copy(update={"duplicate_window": 1.0})
    async with clients(backend) as (redis, js):
        ids = [(await redis.xadd("md:ticks", {"data": str(i)})).decode() for i in range(5)]
        async with running(settings(backend, bus=bus)) as (ingest, _):
            await eventually(lambda: ingest.stats.last_id.get("md:ticks") == ids[-1], what="five handled")
            assert (await redis.get(hwm_key("md:ticks"))) == ids[-1].encode()

            async def window_passed() -> bool:
                ack = await js.publish("md.probe", b"", headers={MSG_ID: "probe"})
                return not ack.duplicate and ack.seq > 6  # the second probe was stored again

            await js.publish("md.probe", b"", headers={MSG_ID: "probe"})
            await eventually(window_passed, within=10, every=0.2, what="duplicate window passed")
            await redis.xgroup_setid("md:ticks", "tickwire", "0")
            await eventually(lambda: ingest.stats.duplicates_skipped == 5, what="re-deliveries skipped")
            assert await pending(redis, "md:ticks") == 0
            assert ingest.stats.published == 5
        entries = by_stream([m for m in await stored(js) if m.subject == "md.ticks"])
    assert entries == {"md:ticks": ids}


async def test_bad_entries_go_to_the_dead_letter_stream_and_the_stream_flows(backend: Backend) -> None:
    """1. XADD good, not-JSON, too large, good; 2. run ingest with a 1 KB payload limit;
    3. both good ones are in MD; the two bad ones are in tickwire:dead with reason and fields; nothing pending."""
    async with clients(backend) as (redis, js):
        first = (await redis.xadd("md:ticks", {"data": "1"})).decode()
        bad = (await redis.xadd("md:ticks", {"data": "{oops", "symbol": "X"})).decode()
        big = (await redis.xadd("md:ticks", {"data": '"' + "x" * 2000 + '"'})).decode()
        last = (await redis.xadd("md:ticks", {"data": "2"})).decode()
        async with running(settings(backend, max_payload=1000)) as (ingest, _):
            await eventually(lambda: ingest.stats.last_id.get("md:ticks") == last, what="all handled")
            assert await pending(redis, "md:ticks") == 0
        dead = await redis.xrange("tickwire:dead")
        assert ingest.stats.dead_lettered == 2
        assert [(f[b"id"].decode(), f[b"reason"].decode(), f[b"stream"]) for _, f in dead] == [
            (bad, "data is not JSON", b"md:ticks"),
            (big, "too large", b"md:ticks"),
        ]
        assert dead[0][1][b"data"] == b"{oops" and len(dead[1][1][b"data"]) == 2002
        assert [m.headers[ENTRY_ID] for m in await stored(js) if m.headers] == [first, last]


async def test_trimmed_pending_entries_become_a_gap_notice(backend: Backend) -> None:
    """1. three entries read into the group's pending list (as a crashed holder would leave them);
    2. the stream is trimmed to nothing; 3. ingest reports three trimmed, acks them, publishes one
    gap notice (md.ticks, Tw-Gap: trimmed, Msg-Id naming the first lost entry), then the new entry."""
    async with clients(backend) as (redis, js):
        lost = [(await redis.xadd("md:ticks", {"data": str(i)})).decode() for i in range(3)]
        await redis.xgroup_create("md:ticks", "tickwire", id="0")
        await redis.xreadgroup("tickwire", CONSUMER, {"md:ticks": ">"})
        await redis.xtrim("md:ticks", maxlen=0, approximate=False)
        fresh = (await redis.xadd("md:ticks", {"data": "3"})).decode()
        async with running(settings(backend)) as (ingest, _):
            await eventually(lambda: ingest.stats.last_id.get("md:ticks") == fresh, what="new entry handled")
            assert ingest.stats.trimmed == 3 and ingest.stats.gaps == 1
            assert await pending(redis, "md:ticks") == 0
        notice, entry = await stored(js)
    assert notice.subject == "md.ticks" and notice.data == b""
    assert notice.headers is not None
    assert (notice.headers[MSG_ID], notice.headers[GAP]) == (f"gap:md:ticks:{lost[0]}", "trimmed")
    assert entry.headers is not None and entry.headers[ENTRY_ID] == fresh


async def test_two_replicas_split_streams_and_a_dead_ones_are_taken_over(backend: Backend) -> None:
    """1. four streams, replicas a and b: each reads two; 2. a producer keeps XADDing to all four;
    3. a dies abruptly (cancelled, leases not released) while publishing; 4. b takes all four
    within a few lease TTLs; 5. every entry is in MD exactly once, in per-stream order."""
    streams = [f"md:s{i}" for i in range(4)]
    added: dict[str, list[str]] = {s: [] for s in streams}
    async with clients(backend) as (redis, js):
        for s in streams:
            added[s].append((await redis.xadd(s, {"data": "0"})).decode())
        async with running(settings(backend, "a")) as (a, a_task), running(settings(backend, "b")) as (b, _):

            def split() -> bool:
                return len(a.streams) == 2 and len(b.streams) == 2 and a.streams | b.streams == set(streams)

            await eventually(split, within=15, what="a 2/2 split")

            async def produce(n: int) -> None:
                for i in range(1, n + 1):
                    for s in streams:
                        added[s].append((await redis.xadd(s, {"data": str(i)})).decode())

            async with asyncio.TaskGroup() as tg:
                tg.create_task(produce(300))
                await eventually(lambda: a.stats.published > 50, what="a publishing")
                a_task.cancel()  # a crash: no graceful release, its leases and membership just expire
                with contextlib.suppress(asyncio.CancelledError):
                    await a_task
            loop = asyncio.get_running_loop()
            died = loop.time()
            await eventually(lambda: b.streams == set(streams), within=10, what="b holds all four")
            took = loop.time() - died
            total = sum(len(ids) for ids in added.values())

            async def all_in() -> bool:
                return await stored_count(js) >= total and all([await pending(redis, s) == 0 for s in streams])

            await eventually(all_in, within=20, what="every entry in MD and acked")
        msgs = await stored(js)
    tw_ids = Counter((m.headers or {})[MSG_ID] for m in msgs)
    assert len(msgs) == sum(len(ids) for ids in added.values()), "raw duplicates in MD"
    assert max(tw_ids.values()) == 1
    assert by_stream(msgs) == added
    assert took < 3 * 1.5 + 1
