"""The market simulator: realistic entries, paced to the rate, bounded streams."""

from __future__ import annotations

import asyncio

import orjson
import redis.asyncio as aioredis

from tests.conftest import Backend
from tests.waiting import eventually
from tickwire.settings import SimulatorSettings
from tickwire.simulator import Market, run


def test_quotes_and_trades_are_consistent() -> None:
    market = Market(SimulatorSettings(symbols=30, trade_ratio=0.3, seed=7))
    assert len({i.symbol for i in market.instruments}) == 30
    seen = {"ticks": 0, "trades": 0}
    for _ in range(5000):
        channel, symbol, data = market.next_entry()
        seen[channel] += 1
        assert data["symbol"] == symbol
        if channel == "ticks":
            assert 0 < data["bid"] < data["ask"]  # type: ignore[operator]
        else:
            assert data["side"] in ("buy", "sell") and data["size"] >= 1  # type: ignore[operator]
    assert 1000 < seen["trades"] < 2000  # ~30% of 5,000


async def test_simulator_writes_bounded_streams_at_the_rate(backend: Backend) -> None:
    """1. run at 2,000 entries/s with MAXLEN 500; 2. wait until 1,500 ticks were added;
    3. stop; 4. the stream is trimmed near MAXLEN and entries carry an origin ts."""
    stop = asyncio.Event()
    settings = SimulatorSettings(redis_url=backend.redis_url, rate=2000, maxlen=500, seed=1)
    task = asyncio.create_task(run(settings, stop))
    async with aioredis.from_url(backend.redis_url) as redis:

        async def added(stream: str) -> int:
            return int((await redis.xinfo_stream(stream))["entries-added"]) if await redis.exists(stream) else 0

        async def enough() -> bool:
            return await added("md:ticks") >= 1500 and await added("md:trades") >= 200

        await eventually(enough, what="1,500 ticks and 200 trades")
        stop.set()
        await task
        ticks = await redis.xlen("md:ticks")
        _, fields = (await redis.xrevrange("md:ticks", count=1))[0]
    assert ticks < 1000  # approximate MAXLEN trims in whole nodes of 100 entries
    assert int(fields[b"ts"]) > 1_700_000_000_000_000
    assert orjson.loads(fields[b"data"])["symbol"] == fields[b"symbol"].decode()
