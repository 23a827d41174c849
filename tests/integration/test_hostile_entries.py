"""Entries no client could read are refused at ingest, with the reason, and the stream flows on."""

from __future__ import annotations

from ingest.mapping import ID_TIME_OUT_OF_RANGE, TS_NOT_INTEGER, TS_OUT_OF_RANGE
from services.envelope import ENTRY_ID, MSG_ID, ORIGIN_TS
from tests.conftest import Backend
from tests.integration.test_ingest import clients, pending, running, settings, stored
from tests.waiting import eventually


async def test_times_past_what_clients_read_are_dead_lettered_and_big_integers_stay_exact(backend: Backend) -> None:
    """1. XADD a good entry, one with ts 10^30, one with ts "soon", one with an explicit entry
    ID of 10^17 ms and no ts (10^20 µs), and after it one with that ID's time but a good ts
    and an integer past 64 bits in its data; 2. run ingest; 3. the three bad ones are in
    tickwire:dead with their reasons, nothing is pending; 4. MD holds the two good ones, the
    big integer digit for digit (it used to arrive as 1.2345678901234568e+29)."""
    big = "123456789012345678901234567890"
    async with clients(backend) as (redis, js):
        first = (await redis.xadd("md:ticks", {"symbol": "A", "data": "1"})).decode()
        huge = (await redis.xadd("md:ticks", {"symbol": "A", "data": "{}", "ts": "9" * 30})).decode()
        word = (await redis.xadd("md:ticks", {"symbol": "A", "data": "{}", "ts": "soon"})).decode()
        far = (await redis.xadd("md:ticks", {"symbol": "A", "data": "{}"}, id="100000000000000000-0")).decode()
        last = (await redis.xadd("md:ticks", {"symbol": "A", "data": f'{{"big": {big}}}', "ts": "7"},
                                 id="100000000000000000-1")).decode()
        async with running(settings(backend)) as (ingest, _):
            await eventually(lambda: ingest.stats.last_id.get("md:ticks") == last, what="all handled")
            assert await pending(redis, "md:ticks") == 0
        dead = await redis.xrange("tickwire:dead")
        msgs = await stored(js)
    assert [(f[b"id"].decode(), f[b"reason"].decode()) for _, f in dead] == [
        (huge, TS_OUT_OF_RANGE), (word, TS_NOT_INTEGER), (far, ID_TIME_OUT_OF_RANGE)]
    assert [m.headers[ENTRY_ID] for m in msgs if m.headers] == [first, last]
    assert msgs[1].headers is not None and msgs[1].headers[ORIGIN_TS] == "7"
    assert msgs[1].data == f'{{"big":{big}}}'.encode()


async def test_a_stream_name_cannot_add_a_header(backend: Backend) -> None:
    """1. an entry on a stream whose name holds CR LF and a header line (Redis keys are any
    bytes, and ingest reads every ``md:*``); 2. ingest publishes it: the Msg-Id, which names the
    stream, stays one header value, and no header of the name's making reaches MD."""
    stream = "md:evil\r\nTw-Ts: 1"
    async with clients(backend) as (redis, js):
        entry = (await redis.xadd(stream, {"symbol": "A", "data": "1", "ts": "5"})).decode()
        async with running(settings(backend)) as (ingest, _):
            await eventually(lambda: ingest.stats.last_id.get(stream) == entry, what="the entry handled")
        [msg] = await stored(js)
    assert msg.headers is not None
    assert msg.headers[ORIGIN_TS] == "5" and msg.headers[ENTRY_ID] == entry
    assert msg.headers[MSG_ID] == f"md:evil  Tw-Ts: 1:{entry}"
