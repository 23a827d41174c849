"""``GET /sse``: the WebSocket stream as Server-Sent Events, resumable with Last-Event-ID."""

from __future__ import annotations

import asyncio

import httpx

from tests.integration.gateway.harness import Bus, StartGateway
from tests.integration.gateway.sse import SseReader


async def test_sse_streams_subscribed_snapshot_live_and_pings(start_gateway: StartGateway, bus: Bus) -> None:
    """1. publish one tick  2. GET /sse?topics=ticks.AAPL,trades.*  3. subscribed, then the
    snapshot (id = seq)  4. live trade and tick events  5. a `: ping` comment arrives."""
    before = await bus.publish("md.ticks.AAPL", {"v": 1})
    gw = await start_gateway(heartbeat=0.2)
    async with (
        httpx.AsyncClient(base_url=gw.http_url, timeout=10) as http,
        http.stream("GET", "/sse", params={"topics": "ticks.AAPL,trades.*"}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        sse = SseReader(response)
        subscribed = await sse.expect("subscribed")
        assert subscribed.data["topics"] == ["ticks.AAPL", "trades.*"] and subscribed.id is None
        snapshot = await sse.expect("msg")
        assert snapshot.id == str(before) and snapshot.data["data"] == {"v": 1}
        trade = await bus.publish("md.trades.MSFT", {"v": 2})
        tick = await bus.publish("md.ticks.AAPL", {"v": 3})
        await bus.publish("md.ticks.MSFT", {"v": 4})  # not subscribed
        got = [await sse.expect("msg"), await sse.expect("msg")]
        assert [(e.id, e.data["topic"], e.data["seq"]) for e in got] == [
            (str(trade), "trades.MSFT", trade),
            (str(tick), "ticks.AAPL", tick),
        ]
        assert await sse.ping() == ": ping"


async def test_sse_resumes_with_last_event_id_without_gap_or_duplicate(start_gateway: StartGateway, bus: Bus) -> None:
    """1. publish continuously  2. an SSE client takes 20 events, disconnects
    3. reconnects with Last-Event-ID = the last id (and a stale since=0 it overrides)
    4. the union of both streams is exactly every published seq, in order."""
    gw = await start_gateway()
    stop = asyncio.Event()
    published: list[int] = []

    async def producer() -> None:
        while not stop.is_set():
            published.append(await bus.publish("md.ticks.AAPL"))

    task = asyncio.create_task(producer())
    seen: list[int] = []
    try:
        async with httpx.AsyncClient(base_url=gw.http_url, timeout=10) as http:
            async with http.stream("GET", "/sse", params={"topics": "ticks.AAPL", "since": 0}) as response:
                sse = SseReader(response)
                await sse.expect("subscribed")
                for _ in range(20):
                    event = await sse.expect("msg")
                    assert event.id == str(event.data["seq"])
                    seen.append(event.data["seq"])
            headers = {"Last-Event-ID": str(seen[-1])}
            async with http.stream(
                "GET", "/sse", params={"topics": "ticks.AAPL", "since": 0}, headers=headers
            ) as response:
                sse = SseReader(response)
                assert (await sse.expect("subscribed")).data["recovered"] is True
                for _ in range(20):
                    seen.append((await sse.expect("msg")).data["seq"])
                stop.set()
                await task
                while seen[-1] < published[-1]:
                    seen.append((await sse.expect("msg")).data["seq"])
    finally:
        stop.set()
        await task
    assert seen == published


async def test_sse_bad_input_is_400_with_a_json_error(start_gateway: StartGateway, bus: Bus) -> None:
    """1. no topics, a bad topic, a non-numeric since, a bad Last-Event-ID, a since beyond the
    stream  2. each is HTTP 400 with an error object naming the problem  3. the replica still serves."""
    await bus.publish("md.ticks.AAPL")
    gw = await start_gateway()
    cases = [
        ({}, {}, "bad_request"),
        ({"topics": "ticks..x"}, {}, "bad_topic"),
        ({"topics": "ticks.AAPL", "since": "abc"}, {}, "bad_since"),
        ({"topics": "ticks.AAPL"}, {"Last-Event-ID": "-3"}, "bad_since"),
        ({"topics": "ticks.AAPL", "since": 1000}, {}, "bad_since"),
    ]
    async with httpx.AsyncClient(base_url=gw.http_url, timeout=10) as http:
        for params, headers, code in cases:
            response = await http.get("/sse", params=params, headers=headers)
            assert response.status_code == 400, (params, response.text)
            body = response.json()
            assert body["type"] == "error" and body["code"] == code and body["message"], body
        assert (await http.get("/readyz")).status_code == 200
