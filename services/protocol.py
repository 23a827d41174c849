"""WebSocket protocol v1's shared vocabulary: client frames parsed strictly, close and error codes.

The contract is ``docs/protocol.md``. Server frames are encoded by the gateway alone
(gateway.frames).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from services.subjects import TopicError, validate_pattern

PROTOCOL_VERSION = 1
MAX_TOPICS_PER_FRAME = 256


class CloseCode(enum.IntEnum):
    NORMAL = 1000
    INVALID_DATA = 1007
    POLICY = 1008
    TOO_LARGE = 1009
    INTERNAL = 1011
    RESTART = 1012
    TRY_AGAIN = 1013
    SLOW_CONSUMER = 4008


class ErrorCode(enum.StrEnum):
    BAD_REQUEST = "bad_request"
    UNKNOWN_TYPE = "unknown_type"
    BAD_TOPIC = "bad_topic"
    BAD_SINCE = "bad_since"
    TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
    UNAUTHORIZED = "unauthorized"  # no token, or one that does not verify
    FORBIDDEN = "forbidden"  # a verified token that does not grant this
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"


class ProtocolError(ValueError):
    """A client frame the server refuses; becomes an ``error`` frame."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---- client → server -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscribe:
    topics: tuple[str, ...]
    # None: snapshot; int: one position for every topic; dict: per topic.
    since: int | dict[str, int] | None = None
    epoch: str | None = None

    def since_for(self, topic: str) -> int | None:
        if isinstance(self.since, dict):
            return self.since.get(topic)
        return self.since


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Ping:
    id: Any
    ts: int | None


@dataclass(frozen=True, slots=True)
class Receipt:
    seq: int
    trace: str
    t: int


@dataclass(frozen=True, slots=True)
class Report:
    received: tuple[Receipt, ...]
    latency: dict[str, float]


@dataclass(frozen=True, slots=True)
class Auth:
    token: str


ClientFrame = Subscribe | Unsubscribe | Ping | Report | Auth


def _topics(frame: dict[str, Any]) -> tuple[str, ...]:
    topics = frame.get("topics")
    if not isinstance(topics, list) or not topics:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "'topics' must be a non-empty list of strings")
    if len(topics) > MAX_TOPICS_PER_FRAME:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"at most {MAX_TOPICS_PER_FRAME} topics per frame")
    try:
        return tuple(dict.fromkeys(validate_pattern(t) for t in topics))
    except TopicError as exc:
        raise ProtocolError(ErrorCode.BAD_TOPIC, str(exc)) from None


def _seq(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError(ErrorCode.BAD_SINCE, f"{what} must be a non-negative integer")
    return value


def _subscribe(frame: dict[str, Any]) -> Subscribe:
    topics = _topics(frame)
    raw = frame.get("since")
    since: int | dict[str, int] | None
    if raw is None:
        since = None
    elif isinstance(raw, dict):
        since = {}
        for topic, seq in raw.items():
            since[topic] = _seq(seq, f"since[{topic!r}]")
    else:
        since = _seq(raw, "since")
    epoch = frame.get("epoch")
    if epoch is not None and not isinstance(epoch, str):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "'epoch' must be a string")
    return Subscribe(topics, since, epoch)


def _ping(frame: dict[str, Any]) -> Ping:
    ident = frame.get("id")
    if ident is not None and not isinstance(ident, (int, str)):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "'id' must be a number or string")
    ts = frame.get("ts")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, (int, float))):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "'ts' must be a number")
    return Ping(ident, int(ts) if ts is not None else None)


def _report(frame: dict[str, Any]) -> Report:
    received = frame.get("received", [])
    latency = frame.get("latency", {})
    if not isinstance(received, list) or len(received) > 1000 or not isinstance(latency, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "'received' must be a list (≤1000), 'latency' an object")
    receipts = []
    for item in received:
        if not isinstance(item, dict):
            raise ProtocolError(ErrorCode.BAD_REQUEST, "each receipt must be an object")
        seq, trace, t = item.get("seq"), item.get("trace"), item.get("t")
        if not isinstance(seq, int) or not isinstance(trace, str) or not isinstance(t, (int, float)):
            raise ProtocolError(ErrorCode.BAD_REQUEST, "receipt needs seq (int), trace (str), t (number)")
        receipts.append(Receipt(seq, trace, int(t)))
    figures = {k: float(v) for k, v in latency.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return Report(tuple(receipts), figures)


def _auth(frame: dict[str, Any]) -> Auth:
    token = frame.get("token")
    if not isinstance(token, str) or not token:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "'token' must be a non-empty string")
    return Auth(token)


_PARSERS: dict[str, Callable[[dict[str, Any]], ClientFrame]] = {
    "subscribe": _subscribe,
    "unsubscribe": lambda f: Unsubscribe(_topics(f)),
    "ping": _ping,
    "report": _report,
    "auth": _auth,
}


def parse_client_frame(text: str | bytes) -> ClientFrame:
    """Parse one client frame or raise ProtocolError; never anything else."""
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "frame is not valid JSON") from None
    if not isinstance(frame, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "frame must be a JSON object")
    kind = frame.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown frame type {str(kind)[:40]!r}")
    return parser(frame)
