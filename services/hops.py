"""The clock every hop stamps with: integer microseconds since the epoch."""

from __future__ import annotations

import time


def now_us() -> int:
    return time.time_ns() // 1000


def entry_id_us(entry_id: str) -> int:
    """Origin time of a Redis entry without ``ts``: its ID's millisecond part."""
    return int(entry_id.partition("-")[0]) * 1000
