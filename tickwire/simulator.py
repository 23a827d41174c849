"""Market simulator: random-walk quotes and trades XADDed to ``md:ticks`` and ``md:trades``.

Each symbol's mid price follows a geometric random walk; quotes carry a spread that
widens with volatility; trades print at bid or ask with lognormal sizes. Entries are
paced to ``rate`` per second in total, written in pipelined batches every few ms, and
the streams are bounded by MAXLEN.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import string
import time
from dataclasses import dataclass

from services.connections import open_redis
from services.hops import now_us
from services.lifecycle import stop_on_signals
from services.telemetry import ATTR_STREAM, ATTR_TOPIC, SIMULATOR, SpanKind, Tracer, traceparent_of, tracing
from tickwire.producer import entry_fields, stream_key
from tickwire.settings import SimulatorSettings

log = logging.getLogger(__name__)

TICK_INTERVAL = 0.005  # pacing granularity: small enough for smooth flow, big enough to batch


def symbol_names(count: int, rng: random.Random) -> list[str]:
    """Stable, ticker-like names: a few well-known ones, then generated ones."""
    known = [
        "AAPL",
        "MSFT",
        "NVDA",
        "AMZN",
        "GOOG",
        "META",
        "TSLA",
        "JPM",
        "V",
        "XOM",
        "BRK",
        "UNH",
        "JNJ",
        "WMT",
        "MA",
        "PG",
        "HD",
        "CVX",
        "KO",
        "PEP",
    ]
    names = known[:count]
    while len(names) < count:
        name = "".join(rng.choices(string.ascii_uppercase, k=rng.choice((3, 4))))
        if name not in names:
            names.append(name)
    return names


@dataclass
class Instrument:
    symbol: str
    mid: float
    volatility: float  # per-step relative standard deviation
    open: float

    def step(self, rng: random.Random) -> None:
        self.mid = max(0.01, self.mid * math.exp(rng.gauss(0.0, self.volatility)))

    def quote(self, rng: random.Random) -> dict[str, object]:
        half_spread = self.mid * (0.0001 + self.volatility * rng.random())
        bid, ask = round(self.mid - half_spread, 4), round(self.mid + half_spread, 4)
        last = round(self.mid, 4)
        return {
            "symbol": self.symbol,
            "bid": bid,
            "ask": ask,
            "last": last,
            "change": round(last - self.open, 4),
            "change_pct": round((last / self.open - 1) * 100, 3),
        }

    def trade(self, rng: random.Random) -> dict[str, object]:
        side = rng.choice(("buy", "sell"))
        spread = self.mid * 0.0002
        price = round(self.mid + (spread if side == "buy" else -spread), 4)
        size = max(1, int(rng.lognormvariate(4.0, 1.0)))
        return {"symbol": self.symbol, "price": price, "size": size, "side": side}


class Market:
    """The simulated instruments and the entries they produce."""

    def __init__(self, settings: SimulatorSettings) -> None:
        self.rng = random.Random(settings.seed)
        self.trade_ratio = min(1.0, settings.trade_ratio)
        self.instruments = []
        for symbol in symbol_names(settings.symbols, self.rng):
            price = round(self.rng.uniform(10, 500), 2)
            self.instruments.append(Instrument(symbol, price, self.rng.uniform(0.0002, 0.001), price))

    def next_entry(self) -> tuple[str, str, dict[str, object]]:
        """(channel, symbol, data) of the next entry."""
        inst = self.rng.choice(self.instruments)
        inst.step(self.rng)
        if self.rng.random() < self.trade_ratio:
            return "trades", inst.symbol, inst.trade(self.rng)
        return "ticks", inst.symbol, inst.quote(self.rng)


async def run(settings: SimulatorSettings, stop: asyncio.Event | None = None) -> None:
    """XADD entries at ``settings.rate`` per second until ``stop`` is set (or a signal comes)."""
    if stop is None:
        stop = asyncio.Event()
        with stop_on_signals(stop):
            await _simulate(settings, stop)
    else:
        await _simulate(settings, stop)


async def _simulate(settings: SimulatorSettings, stop: asyncio.Event) -> None:
    market = Market(settings)
    with tracing(SIMULATOR, settings.tracing) as tracer:
        async with open_redis(settings.redis_url) as redis:
            log.info(
                "simulating %d symbols at %.0f entries/s into %s and %s",
                len(market.instruments),
                settings.rate,
                stream_key("ticks"),
                stream_key("trades"),
            )
            started = time.monotonic()
            sent = 0
            while not stop.is_set():
                due = int((time.monotonic() - started) * settings.rate) - sent
                if due > 0:
                    pipe = redis.pipeline(transaction=False)
                    for _ in range(due):
                        channel, symbol, data = market.next_entry()
                        fields = entry_fields(data, symbol, now_us(), origin_trace(tracer, channel, symbol))
                        pipe.xadd(
                            stream_key(channel),
                            fields,
                            maxlen=settings.maxlen,
                            approximate=True,
                        )
                    await pipe.execute()
                    sent += due
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), TICK_INTERVAL)


def origin_trace(tracer: Tracer | None, channel: str, symbol: str) -> dict[str, str] | None:
    """The trace context of a producer span for one entry, when the sampler keeps it
    (parent-based ratio from ``OTEL_TRACES_SAMPLER``/``_ARG``); None otherwise."""
    if tracer is None:
        return None
    span = tracer.start_span(
        f"produce {stream_key(channel)}",
        kind=SpanKind.PRODUCER,
        attributes={ATTR_STREAM: stream_key(channel), ATTR_TOPIC: f"{channel}.{symbol}"},
    )
    span.end()
    return {"traceparent": traceparent_of(span)} if span.get_span_context().trace_flags.sampled else None
