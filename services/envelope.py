"""How an entry travels on the bus: JetStream headers shared by ingest and gateway.

The payload is the entry's ``data`` as compact JSON bytes; everything else rides in
headers so the gateway can splice the payload into client frames without parsing it.
"""

from __future__ import annotations

MSG_ID = "Nats-Msg-Id"  # "<redis stream>:<entry id>": JetStream de-duplicates on it
ENTRY_ID = "Tw-Id"  # Redis entry ID, e.g. "1764433200123-0"
ORIGIN_TS = "Tw-Ts"  # origin time, µs since the epoch
READ_TS = "Tw-Read"  # ingest read from Redis, µs
PUBLISH_TS = "Tw-Pub"  # ingest publish, µs
GAP = "Tw-Gap"  # marks a gap notice instead of an entry; value is the reason
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"


def msg_id(stream_key: str, entry_id: str) -> str:
    return f"{stream_key}:{entry_id}"
