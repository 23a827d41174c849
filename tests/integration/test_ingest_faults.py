"""ingest in-process against real Redis and NATS that go away and come back, and entries trimmed unread."""

from __future__ import annotations

import logging

import httpx
import pytest
import redis.asyncio as aioredis

from ingest.links import LinkState
from ingest.service import Ingest
from services.envelope import GAP, MSG_ID
from tests.conftest import Backend
from tests.integration.test_ingest import by_stream, clients, running, settings, stored
from tests.servers import Server
from tests.waiting import eventually
from tickwire.localservers import free_port


def local(backend: Backend) -> tuple[Server, Server]:
    if backend.redis is None or backend.nats is None:
        pytest.skip("needs local, killable servers")
    return backend.redis, backend.nats


async def add(redis: aioredis.Redis, n: int, stream: str = "md:ticks", start: int = 0) -> list[str]:
    return [
        (await redis.xadd(stream, {"symbol": f"S{i % 3}", "data": str(i)})).decode() for i in range(start, start + n)
    ]


def handled(ingest: Ingest, entry_id: str, stream: str = "md:ticks") -> bool:
    return ingest.stats.last_id.get(stream) == entry_id


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Tracebacks ingest logged (the test's own NATS client logs its reconnect errors with one)."""
    return [r.getMessage() for r in caplog.records if r.exc_info and r.name.startswith(("ingest", "services"))]


def lines(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in record.getMessage() for record in caplog.records)


async def test_nats_restart_is_ridden_out_and_readyz_follows(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """1. ingest with /readyz on; ten entries published, readyz 200; 2. NATS killed: readyz 503;
    3. ten more entries XADDed while it is down; 4. NATS started again (same data dir): readyz 200,
    the ten arrive; MD holds all twenty once, in order; one "publish failing" line, no traceback."""
    caplog.set_level(logging.INFO)
    _, nats_proc = local(backend)
    port = free_port()
    async with clients(backend) as (redis, js), running(settings(backend, metrics_port=port)) as (ingest, task):
        url = f"http://127.0.0.1:{port}"
        first = await add(redis, 10)
        async with httpx.AsyncClient() as http:

            async def readyz(code: int) -> bool:
                return (await http.get(f"{url}/readyz")).status_code == code

            await eventually(lambda: handled(ingest, first[-1]), what="first ten")
            await eventually(lambda: readyz(200), what="ready")
            assert (await http.get(f"{url}/healthz")).status_code == 200
            nats_proc.kill()
            await eventually(lambda: readyz(503), what="not ready while NATS is down")
            during = await add(redis, 10, start=10)
            await eventually(lambda: ingest.stats.publish_retries > 0, what="publishes retried")
            assert (await http.get(f"{url}/healthz")).status_code == 200  # alive though not ready
            nats_proc.start()
            await eventually(lambda: handled(ingest, during[-1]), what="entries added during the outage")
            await eventually(lambda: readyz(200), what="ready again")
        assert not task.done()
        await js._nc.flush()
        msgs = await stored(js)
    assert by_stream(msgs) == {"md:ticks": first + during}
    assert lines(caplog, "jetstream: publish failing") == 1 and lines(caplog, "jetstream: publishing again") == 1
    # nats.py reports every failed reconnect attempt; one line per outage reaches the log.
    assert lines(caplog, "further errors are quiet") == 1
    assert not tracebacks(caplog)


async def test_redis_restart_is_ridden_out_with_one_line_each_way(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """1. ingest bridging two streams; 2. Redis killed (AOF on) and left down for a few lease ticks;
    3. started again: ingest logs "redis: unavailable" once and "redis: back" once, no traceback;
    4. entries XADDed before and after all arrive once, in order."""
    caplog.set_level(logging.INFO)
    redis_proc, _ = local(backend)
    async with clients(backend) as (redis, js), running(settings(backend)) as (ingest, task):
        before = {s: await add(redis, 5, s) for s in ("md:ticks", "md:trades")}
        await eventually(lambda: all(handled(ingest, ids[-1], s) for s, ids in before.items()), what="before")
        redis_proc.kill()
        await eventually(lambda: ingest.redis_link.state is LinkState.DOWN, what="redis seen down")
        redis_proc.start()
        await eventually(lambda: ingest.redis_link.state is LinkState.UP, within=10, what="redis seen back")
        await redis.connection_pool.disconnect()  # the test's own client still holds dead connections
        after = {s: await add(redis, 5, s, start=5) for s in before}
        await eventually(lambda: all(handled(ingest, ids[-1], s) for s, ids in after.items()), what="after")
        assert not task.done()
        msgs = await stored(js)
    assert by_stream(msgs) == {s: before[s] + after[s] for s in before}
    assert lines(caplog, "redis: unavailable") == 1 and lines(caplog, "redis: back") == 1
    assert not tracebacks(caplog)


async def test_a_batch_larger_than_the_buffer_waits_for_nats_and_is_retried(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """1. a 600-byte nats.py pending buffer (room for two or three messages); 2. NATS killed and
    ingest's connection seen down; 3. 40 entries XADDed, one batch: its first piece (half the
    buffer) waits there, unacknowledged, and the bridge waits for NATS; 4. NATS back: all 40 in
    MD once, in order, nothing dead-lettered."""
    _, nats_proc = local(backend)
    bus = backend.bus().model_copy(update={"nats_pending_bytes": 600})
    async with clients(backend) as (redis, js), running(settings(backend, bus=bus)) as (ingest, _):
        warm = await add(redis, 1)
        await eventually(lambda: handled(ingest, warm[-1]), what="first entry")
        nats_proc.kill()
        await eventually(lambda: ingest._nc is not None and not ingest._nc.is_connected, what="connection down")
        async with redis.pipeline(transaction=False) as pipe:  # one batch, larger than the buffer
            for i in range(1, 41):
                pipe.xadd("md:ticks", {"data": str(i)})
            during = [entry_id.decode() for entry_id in await pipe.execute()]
        await eventually(lambda: lines(caplog, "publish failing") > 0, what="the first piece unacknowledged")
        nats_proc.start()
        await eventually(lambda: handled(ingest, during[-1]), what="all 40 published")
        assert ingest.stats.dead_lettered == 0
        msgs = await stored(js)
    assert by_stream(msgs) == {"md:ticks": warm + during}


async def test_unread_entries_trimmed_while_ingest_was_down(backend: Backend) -> None:
    """1. ingest publishes two entries, then stops; 2. five more are XADDed and the stream trimmed
    to its last two (three never read); 3. ingest starts again: MD holds the two, one gap notice
    naming the first ID after the last one read, then the last two; 4. the metrics say 3 trimmed,
    1 gap, lag 0 (the group's read counter corrected), and XINFO GROUPS agrees."""
    port = free_port()
    async with clients(backend) as (redis, js):
        read = await add(redis, 2)
        async with running(settings(backend)) as (ingest, _):
            await eventually(lambda: handled(ingest, read[-1]), what="first two")
        later = await add(redis, 5, start=2)
        await redis.xtrim("md:ticks", maxlen=2, approximate=False)
        async with running(settings(backend, metrics_port=port)) as (ingest, _):
            await eventually(lambda: handled(ingest, later[-1]), what="last two")
            assert ingest.stats.trimmed == 3 and ingest.stats.gaps == 1
            async with httpx.AsyncClient() as http:

                async def scraped() -> str:
                    return (await http.get(f"http://127.0.0.1:{port}/metrics")).text

                await eventually(lambda: ingest.stats.lag.get("md:ticks") == 0, what="lag measured")
                text = await scraped()
            (group,) = await redis.xinfo_groups("md:ticks")
        msgs = await stored(js)
    assert "tickwire_ingest_trimmed_total 3.0" in text and "tickwire_ingest_gaps_total 1.0" in text
    assert 'tickwire_ingest_lag{stream="md:ticks"} 0.0' in text
    assert "tickwire_event_loop_lag_seconds_count" in text
    assert group["lag"] == 0
    ms, seq = read[-1].split("-")
    notices = [m for m in msgs if m.headers and GAP in m.headers]
    assert [(m.subject, m.headers[MSG_ID], m.headers[GAP]) for m in notices if m.headers] == [
        ("md.ticks", f"gap:md:ticks:{ms}-{int(seq) + 1}", "trimmed")
    ]
    assert msgs.index(notices[0]) == 2
    assert by_stream([m for m in msgs if m not in notices]) == {"md:ticks": read + later[-2:]}
    assert len(msgs) == 5


async def test_entries_trimmed_while_ingest_is_behind_are_announced_once(backend: Backend) -> None:
    """1. ingest running; 2. a pipeline XADDs 300 entries with MAXLEN ~ 50 so that most are trimmed
    before ingest claims them; 3. every entry still in the stream arrives; the lost ones are counted
    exactly (published + trimmed == 300) and each gap announced once."""
    async with clients(backend) as (redis, js), running(settings(backend, batch=10)) as (ingest, _):
        added = await add(redis, 1)  # the group exists and has read: what it misses from now on is a gap
        await eventually(lambda: handled(ingest, added[-1]), what="first entry")
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(1, 300):
                pipe.xadd("md:ticks", {"data": str(i)}, maxlen=50, approximate=False)
            added += [entry_id.decode() for entry_id in await pipe.execute()]
        await eventually(lambda: handled(ingest, added[-1]), what="last entry")
        msgs = await stored(js)
        notices = [m for m in msgs if m.headers and GAP in m.headers]
        entries = [m for m in msgs if m not in notices]
        assert ingest.stats.gaps >= 1 and len(notices) == ingest.stats.gaps
        assert len(entries) + ingest.stats.trimmed == 300
        published = by_stream(entries)["md:ticks"]
        assert published == [i for i in added if i in set(published)]  # in order, each once
