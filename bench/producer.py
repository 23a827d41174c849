"""The bench's producer process: XADDs to ``md:ticks`` at a fixed offered rate.

    python -m bench.producer REDIS_URL RATE DURATION [--symbols N] [--trace-ratio F]

Every ``TICK`` it pipelines the entries due by then (so the offered rate holds however
the event loop is scheduled), each ~150 bytes of JSON with its origin ``ts`` in µs taken
just before the pipeline goes out. With ``--trace-ratio`` a fraction of entries carries
a sampled W3C ``traceparent`` (the rest an unsampled one), as an instrumented producer
with a ratio sampler would. Writes one JSON line: entries per symbol, elapsed, achieved rate.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sys
import time

import orjson
import redis.asyncio as aioredis

from services.hops import now_us

STREAM = "md:ticks"
TICK = 0.005  # seconds between pipelines


def symbols(count: int) -> list[str]:
    return [f"S{i:03d}" for i in range(count)]


def _data(rng: random.Random, symbol: str, n: int, q: int) -> bytes:
    bid = round(100 + rng.random() * 50, 4)
    # ~150 bytes: a realistic quote with a few fields. ``q`` counts this symbol's entries in
    # the run (1, 2, 3, …): a client sees a gap or a duplicate per topic without our seq.
    return orjson.dumps({"symbol": symbol, "bid": bid, "ask": round(bid + 0.01, 4), "bid_size": rng.randint(1, 900),
                         "ask_size": rng.randint(1, 900), "venue": "XNAS", "n": n, "q": q, "cond": "R"})


async def produce(url: str, rate: float, duration: float, count: int, trace_ratio: float) -> dict[str, object]:
    rng = random.Random(7)
    names = symbols(count)
    per_symbol = dict.fromkeys(names, 0)
    redis = aioredis.from_url(url)
    sent = 0
    try:
        start = time.monotonic()
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= duration:
                break
            due = int(rate * elapsed) + 1 - sent
            if due > 0:
                ts = str(now_us())
                async with redis.pipeline(transaction=False) as pipe:
                    for _ in range(due):
                        symbol = names[sent % count]
                        per_symbol[symbol] += 1
                        fields: dict[str, str | bytes] = {
                            "symbol": symbol, "data": _data(rng, symbol, sent, per_symbol[symbol]), "ts": ts}
                        if trace_ratio > 0:
                            flags = "01" if rng.random() < trace_ratio else "00"
                            fields["traceparent"] = f"00-{rng.getrandbits(128):032x}-{rng.getrandbits(64):016x}-{flags}"
                        pipe.xadd(STREAM, fields)  # type: ignore[arg-type]
                        sent += 1
                    await pipe.execute()
            await asyncio.sleep(TICK)
        elapsed = time.monotonic() - start
    finally:
        await redis.aclose()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"sent": sent, "elapsed": elapsed, "achieved_rate": sent / elapsed if elapsed else 0.0,
            "per_symbol": per_symbol, "cpu_seconds": usage.ru_utime + usage.ru_stime}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("rate", type=float)
    parser.add_argument("duration", type=float)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--trace-ratio", type=float, default=0.0)
    args = parser.parse_args()
    result = asyncio.run(produce(args.url, args.rate, args.duration, args.symbols, args.trace_ratio))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
