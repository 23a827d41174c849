"""What both Python baselines read: new entries of ``md:ticks``, one XREAD loop from ``$``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis

STREAM = "md:ticks"


async def entries(url: str) -> AsyncIterator[dict[str, Any]]:
    """Each new entry as ``{"topic","id","ts","data"}``, in stream order, forever."""
    redis = aioredis.from_url(url)
    last: bytes | str = "$"
    while True:
        reply: Any = (  # redis-py's reply type is a union of RESP2/RESP3 shapes
            await redis.xread({STREAM: last}, count=500, block=1000) or [])
        for _, batch in reply:
            for entry_id, fields in batch:
                last = entry_id
                yield {"topic": "ticks." + fields[b"symbol"].decode(), "id": entry_id.decode(),
                       "ts": int(fields[b"ts"]), "data": json.loads(fields[b"data"])}
