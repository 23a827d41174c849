"""The gateway against a real NATS JetStream: protocol v1 over WebSocket, HTTP surface.

Messages are published straight into JetStream with the headers ingest sets, so these
tests do not depend on the ingest service. Gateways run in-process on free ports.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from tests.integration.gateway.harness import FRAME_TIMEOUT, Bus, StartGateway, connect


async def test_welcome_frame_names_the_node(start_gateway: StartGateway) -> None:
    """1. connect offering tickwire.v1  2. the first frame is welcome  3. subprotocol selected."""
    gw = await start_gateway()
    async with websockets.connect(gw.ws_url, subprotocols=[websockets.Subprotocol("tickwire.v1")]) as ws:
        welcome = json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT))
        assert ws.subprotocol == "tickwire.v1"
    assert welcome["type"] == "welcome"
    assert welcome["protocol"] == 1
    assert welcome["node"] == "gw-1"
    assert welcome["heartbeat"] == gw.settings.heartbeat
    assert welcome["session"]


async def test_literal_and_wildcard_subscriptions_get_live_messages(start_gateway: StartGateway, bus: Bus) -> None:
    """1. subscribe ticks.AAPL, ticks.* and trades.> on three connections
    2. publish on several subjects  3. each gets exactly its matches, with full content."""
    gw = await start_gateway()
    async with connect(gw) as literal, connect(gw) as star, connect(gw) as rest:
        for client, topic in ((literal, "ticks.AAPL"), (star, "ticks.*"), (rest, "trades.>")):
            sub = await client.subscribe(topic)
            assert sub["recovered"] is True and sub["topics"] == [topic]
        seqs = {}
        for subject in ("md.ticks.AAPL", "md.ticks.MSFT", "md.trades.AAPL", "md.trades.MSFT.x", "md.ticks.AAPL.x"):
            seqs[subject] = await bus.publish(subject, {"s": subject})
        [m] = await literal.msgs(1)
        assert m == {
            "type": "msg",
            "topic": "ticks.AAPL",
            "seq": seqs["md.ticks.AAPL"],
            "id": m["id"],
            "ts": m["ts"],
            "data": {"s": "md.ticks.AAPL"},
        }
        assert m["id"].endswith("-0") and m["ts"] == int(m["id"].split("-")[0]) * 1000
        assert [m["topic"] for m in await star.msgs(2)] == ["ticks.AAPL", "ticks.MSFT"]
        assert [m["topic"] for m in await rest.msgs(2)] == ["trades.AAPL", "trades.MSFT.x"]
        # Nothing else is queued: a ping is answered next.
        for client in (literal, star, rest):
            await client.send(type="ping", id=1)
            assert (await client.expect("pong"))["id"] == 1


async def test_overlapping_patterns_deliver_each_seq_once(start_gateway: StartGateway, bus: Bus) -> None:
    """1. subscribe ticks.AAPL and ticks.* (one frame), then ticks.> (another)
    2. publish on ticks.AAPL  3. one copy arrives, not three."""
    gw = await start_gateway()
    async with connect(gw) as client:
        await client.subscribe("ticks.AAPL", "ticks.*")
        await client.subscribe("ticks.>")
        first = await bus.publish("md.ticks.AAPL")
        second = await bus.publish("md.ticks.MSFT")
        assert [m["seq"] for m in await client.msgs(2)] == [first, second]
        await client.send(type="ping", id="end")
        assert (await client.expect("pong"))["id"] == "end"


async def test_a_resume_under_a_live_snapshot_pattern_sends_no_older_seq_on_its_topics(
    start_gateway: StartGateway, bus: Bus
) -> None:
    """1. ticks.A gets a1, a2, a3  2. a client subscribes ticks.* (its snapshot: a3), and a4
    arrives live  3. it subscribes ticks.A with since a1  4. a5 is the next message on the
    connection: ticks.* already delivers ticks.A, so the new subscription goes back on none of
    it. (a2 and a3 used to come next, older than a4, and a3 for the second time.)"""
    gw = await start_gateway()
    a = [await bus.publish("md.ticks.A") for _ in range(3)]
    async with connect(gw) as client:
        sub = await client.subscribe("ticks.*")
        assert (await client.expect("msg"))["seq"] == a[2]
        a.append(await bus.publish("md.ticks.A"))
        assert (await client.expect("msg"))["seq"] == a[3]
        await client.subscribe("ticks.A", since=a[0], epoch=sub["epoch"])
        a.append(await bus.publish("md.ticks.A"))
        assert (await client.expect("msg"))["seq"] == a[4]


async def test_a_resume_under_a_live_resumed_pattern_repeats_nothing(start_gateway: StartGateway,
                                                                     bus: Bus) -> None:
    """1. ticks.A gets a1..a3, ticks.B b1  2. a client resumes ticks.* from a1: a2, b1, a3, and
    a4 live  3. it resumes ticks.A from a1, in a second frame  4. a5 is the next message: what
    ticks.* sent is not sent again, nor anything older than a4. (a2 and a3 used to come
    again.)  5. the same two resumed in one frame by a new connection: every seq after a1
    once, in order."""
    gw = await start_gateway()
    a = [await bus.publish("md.ticks.A") for _ in range(2)]
    b1 = await bus.publish("md.ticks.B")
    a.append(await bus.publish("md.ticks.A"))
    async with connect(gw) as client:
        sub = await client.subscribe("ticks.*", since=a[0])
        assert [m["seq"] for m in await client.msgs(3)] == [a[1], b1, a[2]]
        a.append(await bus.publish("md.ticks.A"))
        assert (await client.expect("msg"))["seq"] == a[3]
        await client.subscribe("ticks.A", since=a[0], epoch=sub["epoch"])
        a.append(await bus.publish("md.ticks.A"))
        assert (await client.expect("msg"))["seq"] == a[4]
    async with connect(gw) as client:
        await client.subscribe("ticks.*", "ticks.A", since=a[0], epoch=sub["epoch"])
        assert [m["seq"] for m in await client.msgs(5)] == [a[1], b1, a[2], a[3], a[4]]
        await client.send(type="ping", id="end")
        assert (await client.expect("pong"))["id"] == "end"


async def test_snapshot_is_last_message_per_matching_subject(start_gateway: StartGateway, bus: Bus) -> None:
    """1. publish several messages on three subjects, some before the gateway starts
    2. subscribe ticks.* without since  3. the last message of each ticks subject, in seq order."""
    await bus.publish("md.ticks.AAPL", {"v": 1})
    await bus.publish("md.ticks.MSFT", {"v": 2})
    gw = await start_gateway(replay_buffer=2)  # older subjects come from JetStream, not the ring
    last_aapl = await bus.publish("md.ticks.AAPL", {"v": 3})
    await bus.publish("md.trades.AAPL", {"v": 4})
    async with connect(gw) as client:
        await client.subscribe("ticks.*")
        snapshot = await client.msgs(2)
    assert [(m["topic"], m["data"]["v"]) for m in snapshot] == [("ticks.MSFT", 2), ("ticks.AAPL", 3)]
    assert snapshot[1]["seq"] == last_aapl


async def test_since_resume_has_no_gap_and_no_duplicate(start_gateway: StartGateway, bus: Bus) -> None:
    """1. publish continuously  2. a client takes some messages, disconnects
    3. reconnects with since = last seq seen  4. the union is exactly every seq, in order."""
    gw = await start_gateway()
    stop = asyncio.Event()
    published: list[int] = []

    async def producer() -> None:
        while not stop.is_set():
            published.append(await bus.publish("md.ticks.AAPL"))

    task = asyncio.create_task(producer())
    seen: list[int] = []
    try:
        async with connect(gw) as client:
            sub = await client.subscribe("ticks.AAPL", since=0)
            epoch = sub["epoch"]
            seen += [m["seq"] for m in await client.msgs(30)]
        async with connect(gw) as client:
            await client.subscribe("ticks.AAPL", since=seen[-1], epoch=epoch)
            seen += [m["seq"] for m in await client.msgs(30)]
            stop.set()
            await task
            while seen[-1] < published[-1]:
                seen.append((await client.expect("msg"))["seq"])
    finally:
        stop.set()
        await task
    assert seen == published


async def test_since_older_than_ring_is_read_from_jetstream(start_gateway: StartGateway, bus: Bus) -> None:
    """1. tiny ring (5)  2. publish 40 messages on two subjects  3. resume ticks.AAPL from seq 3
    4. every later ticks.AAPL message arrives once, in order, then live ones."""
    gw = await start_gateway(replay_buffer=5)
    expected = []
    for i in range(40):
        seq = await bus.publish("md.ticks.AAPL" if i % 2 else "md.ticks.MSFT")
        if i % 2:
            expected.append(seq)
    async with connect(gw) as client:
        sub = await client.subscribe("ticks.AAPL", since=3)
        assert sub["recovered"] is True
        got = [m["seq"] for m in await client.msgs(len([s for s in expected if s > 3]))]
        assert got == [s for s in expected if s > 3]
        live = await bus.publish("md.ticks.AAPL")
        assert (await client.expect("msg"))["seq"] == live


async def test_wrong_epoch_means_not_recovered_and_snapshot(start_gateway: StartGateway, bus: Bus) -> None:
    """1. publish  2. subscribe with since and a foreign epoch  3. recovered:false, then the snapshot."""
    last = [await bus.publish("md.ticks.AAPL") for _ in range(3)][-1]
    gw = await start_gateway()
    async with connect(gw) as client:
        sub = await client.subscribe("ticks.AAPL", since=1, epoch="not-this-one")
        assert sub["recovered"] is False
        assert sub["epoch"] != "not-this-one"
        [snapshot] = await client.msgs(1)
        assert snapshot["seq"] == last


async def test_since_in_the_future_is_bad_since(start_gateway: StartGateway, bus: Bus) -> None:
    """1. the stream holds 2 messages  2. subscribe since 1000  3. error bad_since, quickly; still usable."""
    await bus.publish("md.ticks.AAPL")
    await bus.publish("md.ticks.AAPL")
    gw = await start_gateway()
    async with connect(gw) as client:
        await client.send(type="subscribe", topics=["ticks.AAPL"], since=1000)
        error = await client.expect("error")
        assert error["code"] == "bad_since"
        sub = await client.subscribe("ticks.AAPL", since=2)
        assert sub["seq"] == 2


async def test_unsubscribe_stops_delivery(start_gateway: StartGateway, bus: Bus) -> None:
    """1. subscribe ticks.* and trades.*  2. unsubscribe ticks.*  3. only trades arrive."""
    gw = await start_gateway()
    async with connect(gw) as client:
        await client.subscribe("ticks.*", "trades.*")
        await client.send(type="unsubscribe", topics=["ticks.*"])
        assert (await client.expect("unsubscribed"))["topics"] == ["ticks.*"]
        await bus.publish("md.ticks.AAPL")
        trade = await bus.publish("md.trades.AAPL")
        assert (await client.expect("msg"))["seq"] == trade


async def test_ping_pong_and_bad_frames_keep_the_connection(start_gateway: StartGateway, bus: Bus) -> None:
    """1. ping → pong with id and server µs  2. malformed JSON, unknown type, bad topic, binary
    → error frames  3. the connection still subscribes and receives."""
    gw = await start_gateway()
    async with connect(gw) as client:
        await client.send(type="ping", id=7, ts=1)
        pong = await client.expect("pong")
        assert pong["id"] == 7 and pong["ts"] > 1_700_000_000_000_000
        await client.ws.send("{not json")
        assert (await client.expect("error"))["code"] == "bad_request"
        await client.send(type="launch")
        assert (await client.expect("error"))["code"] == "unknown_type"
        await client.send(type="subscribe", topics=["ticks..x"])
        assert (await client.expect("error"))["code"] == "bad_topic"
        await client.ws.send(b"\x00\x01")
        assert (await client.expect("error"))["code"] == "bad_request"
        await client.send(type="auth", token="t")
        assert (await client.expect("error"))["code"] == "bad_request"
        await client.send(type="report", received=[], latency={})
        await client.subscribe("ticks.AAPL")
        seq = await bus.publish("md.ticks.AAPL")
        assert (await client.expect("msg"))["seq"] == seq


async def test_too_many_subscriptions(start_gateway: StartGateway) -> None:
    """1. max 2 subscriptions  2. subscribe 3 topics  3. too_many_subscriptions."""
    gw = await start_gateway(max_subscriptions=2)
    async with connect(gw) as client:
        await client.subscribe("a", "b")
        await client.send(type="subscribe", topics=["c"])
        assert (await client.expect("error"))["code"] == "too_many_subscriptions"


async def test_max_connections_closes_1013(start_gateway: StartGateway) -> None:
    """1. max 1 connection  2. a second connects  3. it is closed with 1013."""
    gw = await start_gateway(max_connections=1)
    async with connect(gw):
        async with websockets.connect(gw.ws_url) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013


async def test_two_gateways_deliver_the_same_sequence(start_gateway: StartGateway, bus: Bus) -> None:
    """1. two replicas  2. one client each on ticks.>  3. same seqs, same frames, in order."""
    gw1, gw2 = await start_gateway(), await start_gateway()
    async with connect(gw1) as one, connect(gw2) as two:
        await one.subscribe("ticks.>", since=0)
        await two.subscribe("ticks.>", since=0)
        for i in range(50):
            await bus.publish(f"md.ticks.S{i % 7}")
        got1, got2 = await one.msgs(50), await two.msgs(50)
    assert got1 == got2
    assert [m["seq"] for m in got1] == list(range(1, 51))


async def test_slow_consumer_is_closed_4008_others_unaffected(start_gateway: StartGateway, bus: Bus) -> None:
    """1. small outbox  2. one client never reads, another does  3. publish plenty
    4. the reader gets everything  5. the stalled client, once it reads, finds close 4008."""
    gw = await start_gateway(outbox_messages=50, outbox_bytes=256 * 1024)
    payload = {"pad": "x" * 16_000}
    async with connect(gw, max_queue=1) as stalled, connect(gw) as reader:
        await stalled.subscribe("ticks.>")
        await reader.subscribe("ticks.>")
        count = 1000
        reading = asyncio.create_task(reader.msgs(count))
        for _ in range(count):
            await bus.publish("md.ticks.AAPL", payload)
        assert len(await reading) == count
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await stalled.frame()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008


async def test_http_surface(start_gateway: StartGateway, bus: Bus) -> None:
    """1. healthz and readyz answer 200  2. status reports node, head, epoch, connections
    3. latency answers, with the event loop's lag, also on /metrics; the dashboard config lists no
    other gateway  4. / says the dashboard is not built."""
    seq = await bus.publish("md.ticks.AAPL")
    gw = await start_gateway()
    async with httpx.AsyncClient(base_url=gw.http_url) as http, connect(gw) as client:
        await client.subscribe("ticks.*", "trades.*")
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200
        status = (await http.get("/api/status")).json()
        assert status["node"] == "gw-1" and status["head"] == seq and status["epoch"]
        assert status["connections"] == 1 and status["subscriptions"] == 2 and status["nats"] == "connected"
        latency = (await http.get("/api/latency")).json()
        assert "hops" in latency and set(latency["loop_lag"]) == {"p50", "p99", "max", "n"}
        assert "tickwire_event_loop_lag_seconds_bucket" in (await http.get("/metrics")).text
        assert (await http.get("/api/dashboard")).json() == {"gateways": []}
        home = await http.get("/")
        assert home.status_code == 200 and "make web" in home.text
