"""Producer helper: append one entry to a Redis stream the way Tickwire reads it.

    async with open_redis(url) as redis:
        await add_entry(redis, "ticks", {"bid": 1.0}, symbol="AAPL")

The entry carries the origin time ``ts`` (µs) and, when the current span is sampled,
its W3C ``traceparent`` so the trace continues through ingest and the gateway.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis
from opentelemetry.trace import get_current_span
from redis.typing import EncodableT, FieldT

from services.hops import now_us
from services.telemetry import traceparent_of

STREAM_PREFIX = "md"  # what ingest's default TICKWIRE_STREAMS (md:*) reads


def stream_key(channel: str) -> str:
    """The Redis stream of ``channel``: ``md:<channel>``, as producers write them (design §1)."""
    return f"{STREAM_PREFIX}:{channel}"


def entry_fields(
    data: Any, symbol: str | None = None, ts: int | None = None, trace: dict[str, str] | None = None
) -> dict[FieldT, EncodableT]:
    """The field map of one entry: ``data`` as JSON, ``ts`` in µs, optional routing and trace."""
    fields: dict[FieldT, EncodableT] = {"data": orjson.dumps(data), "ts": str(ts if ts is not None else now_us())}
    if symbol:
        fields["symbol"] = symbol
    if trace:
        fields.update(trace)
    return fields


async def add_entry(
    redis: aioredis.Redis,
    channel: str,
    data: Any,
    *,
    symbol: str | None = None,
    ts: int | None = None,
    trace: dict[str, str] | None = None,
    maxlen: int | None = None,
) -> str:
    """XADD one entry to ``md:<channel>``; returns its entry ID.

    Without an explicit ``trace``, a sampled current span (the caller's own tracing)
    becomes the entry's parent, so the trace continues through ingest and the gateway.
    """
    if trace is None:
        current = get_current_span()
        if current.get_span_context().trace_flags.sampled:
            trace = {"traceparent": traceparent_of(current)}
    entry_id = await redis.xadd(
        stream_key(channel),
        entry_fields(data, symbol, ts, trace),
        maxlen=maxlen,
        approximate=True,
    )
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
