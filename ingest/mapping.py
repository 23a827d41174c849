"""One Redis stream entry → one JetStream message (subject, payload, headers), or a rejection.

Pure functions: no I/O, no clock (the caller passes the read time), so every rule of the
entry format in design §1 is unit-tested here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from services.envelope import (
    ENTRY_ID,
    GAP,
    MSG_ID,
    ORIGIN_TS,
    PUBLISH_TS,
    READ_TS,
    TRACEPARENT,
    TRACESTATE,
    msg_id,
)
from services.hops import entry_id_us
from services.subjects import channel_of, subject_for

EntryKey = tuple[int, int]
Fields = Mapping[bytes, bytes]

SYMBOL = b"symbol"
DATA = b"data"
TS = b"ts"
# Fields that steer routing or tracing and so never appear in a flat-field document.
RESERVED = frozenset({SYMBOL, DATA, TS, TRACEPARENT.encode(), TRACESTATE.encode()})

NOT_JSON = "data is not JSON"
TRIMMED = "trimmed"
TOO_LARGE = "too large"
TS_NOT_INTEGER = "ts is not an integer"
TS_OUT_OF_RANGE = "ts out of range"
ID_TIME_OUT_OF_RANGE = "entry ID time out of range"

# Origin times are µs since the epoch. 2**53 µs (the year 2255) is the largest a JavaScript
# client reads exactly, and far below the 64 bits every encoder on the path can carry: a
# larger value took gateways down (orjson: "Integer exceeds 64-bit range").
MAX_TIME_US = 1 << 53
# orjson reads an integer beyond 64 bits as a float; only a run this long can be one.
_LONG_NUMBER = re.compile(rb"[0-9]{19}")

# W3C trace context headers are short printable ASCII; anything else could break the NATS
# header block (CR/LF injection) and is dropped rather than forwarded.
_MAX_TRACE_HEADER = 512
# Room for Tw-Pub, which ingest.publisher stamps as it sends, in the header-size estimate.
_PUBLISH_TS_ROOM = len(PUBLISH_TS) + 4 + 20
_NATS_HEADER_LINE = len(b"NATS/1.0\r\n\r\n")
# Every header but the stream key in the Msg-Id is short ASCII (entry IDs, µs times, trace
# values of at most _MAX_TRACE_HEADER), so this bounds the block without the stream key: the
# exact size is worked out only for a payload that close to the limit.
_HEADERS_BOUND = _NATS_HEADER_LINE + 2 * (len(TRACESTATE) + _MAX_TRACE_HEADER + 4) + 512


@dataclass(frozen=True, slots=True)
class Message:
    """What the bridge publishes for one entry (ingest.publisher stamps Tw-Pub as it sends)."""

    entry_id: str
    subject: str
    payload: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Rejected:
    """An entry that can never be published: it goes to the dead-letter stream."""

    entry_id: str
    reason: str


def entry_key(entry_id: str) -> EntryKey:
    """``"1764433200123-7"`` → ``(1764433200123, 7)``: entry IDs compare as int pairs, not strings."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def format_key(key: EntryKey) -> str:
    return f"{key[0]}-{key[1]}"


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _origin_us(fields: Fields, entry_id: str) -> int | str:
    """The origin time, or why the entry has none a client can read."""
    raw = fields.get(TS)
    if raw is None:
        # No ts: the entry ID's millisecond part is the origin time (design §1).
        value = entry_id_us(entry_id)
        return value if value < MAX_TIME_US else ID_TIME_OUT_OF_RANGE
    if not raw.isdigit():  # ASCII digits only: no sign, no space, no "1e6", no "٣"
        return TS_OUT_OF_RANGE if raw[:1] == b"-" and raw[1:].isdigit() else TS_NOT_INTEGER
    if len(raw) > 16:  # beyond MAX_TIME_US, without parsing a huge number
        return TS_OUT_OF_RANGE
    value = int(raw)
    return value if value < MAX_TIME_US else TS_OUT_OF_RANGE


def _trace_value(raw: bytes | None) -> str | None:
    if raw is None or len(raw) > _MAX_TRACE_HEADER:
        return None
    if not all(0x20 <= byte < 0x7F for byte in raw):
        return None
    value = raw.decode("ascii").strip()
    return value or None


def _data(fields: Fields) -> bytes | None:
    """The payload as compact JSON, or None when ``data`` is present but not JSON."""
    raw = fields.get(DATA)
    if raw is None:
        flat = {_text(k): _text(v) for k, v in fields.items() if k not in RESERVED}
        return orjson.dumps(flat)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if _LONG_NUMBER.search(raw) is None:
        return orjson.dumps(value)
    # Maybe an integer beyond 64 bits, which orjson would have turned into a float: the
    # standard library keeps integers exact (orjson has already refused what is not JSON).
    try:
        return json.dumps(json.loads(raw), separators=(",", ":")).encode()
    except ValueError:  # an integer past Python's 4,300-digit conversion limit
        return None


def headers_size(headers: Mapping[str, str]) -> int:
    """Bytes the header block takes on the wire (NATS counts it against max_payload)."""
    return _NATS_HEADER_LINE + sum(len(k.encode()) + len(v.encode()) + 4 for k, v in headers.items())


def _too_large(payload: bytes, headers: Mapping[str, str], stream_key: str, max_message: int) -> bool:
    """Payload and headers (with Tw-Pub to come) past the NATS server's max_payload."""
    size = len(payload) + _PUBLISH_TS_ROOM
    if size + _HEADERS_BOUND + 4 * len(stream_key) <= max_message:  # 4: UTF-8's widest character
        return False
    return size + headers_size(headers) > max_message


def map_entry(
    stream_key: str,
    entry_id: str,
    fields: Fields,
    *,
    prefix: str,
    read_us: int,
    max_payload: int,
    max_message: int,
) -> Message | Rejected:
    """Map one entry read from ``stream_key``.

    ``max_payload`` bounds the payload (Tickwire's setting); ``max_message`` bounds payload
    plus headers (the NATS server's max_payload, which counts both).
    """
    payload = _data(fields)
    if payload is None:
        return Rejected(entry_id, NOT_JSON)
    origin = _origin_us(fields, entry_id)
    if isinstance(origin, str):
        return Rejected(entry_id, origin)
    symbol_raw = fields.get(SYMBOL)
    symbol = _text(symbol_raw).strip() if symbol_raw is not None else None
    headers = {
        MSG_ID: msg_id(stream_key, entry_id),
        ENTRY_ID: entry_id,
        ORIGIN_TS: str(origin),
        READ_TS: str(read_us),
    }
    traceparent = _trace_value(fields.get(TRACEPARENT.encode()))
    if traceparent is not None:
        headers[TRACEPARENT] = traceparent
        # tracestate means nothing without the traceparent it belongs to (W3C trace context).
        tracestate = _trace_value(fields.get(TRACESTATE.encode()))
        if tracestate is not None:
            headers[TRACESTATE] = tracestate
    if len(payload) > max_payload or _too_large(payload, headers, stream_key, max_message):
        return Rejected(entry_id, TOO_LARGE)
    return Message(entry_id, subject_for(prefix, channel_of(stream_key), symbol), payload, headers)


def gap_notice(stream_key: str, first_missing: str, *, prefix: str) -> Message:
    """The notice that entries of ``stream_key`` from ``first_missing`` on were lost upstream.

    Published on the channel's subject without a symbol, so every subscription to the
    channel's topics sees it; the Msg-Id lets a re-announcement de-duplicate like an entry.
    """
    headers = {MSG_ID: f"gap:{stream_key}:{first_missing}", GAP: TRIMMED}
    return Message(first_missing, subject_for(prefix, channel_of(stream_key), None), b"", headers)
