"""The one encoder of every server frame: protocol v1's JSON, WebSocket framing, SSE events.

Server frames are built as ``str`` because they go out as WebSocket text frames; the type
comes first in every one. A message's ``msg`` frame is encoded once at the feed and the
same string is shared by every connection that receives it. Connections with the same
subscriptions then flush the same run of messages: the first joins them into a ``batch``
and serializes the WebSocket frame; the others find both here and only write the bytes.
Entries are keyed by object identity and hold the objects they were built from, so an id
cannot be reused while its entry lives; the caches are small and drop their oldest entry
first, since sharing only happens between flushes of the same moment.

Over SSE each queued frame is one event: ``id`` (the seq, ``msg`` and ``gap`` only, so
``Last-Event-ID`` resumes), ``event`` (the frame's type) and the frame as ``data``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from services.protocol import PROTOCOL_VERSION, ErrorCode

if TYPE_CHECKING:
    from gateway.message import Message

CACHE_SIZE = 256
HEARTBEAT = ""  # the control frame that an SSE stream sends as a ``: ping`` comment
_TYPE = '{"type":"'  # how every frame begins
K = TypeVar("K")
V = TypeVar("V")


# ---- protocol v1 (docs/protocol.md) ----------------------------------------------


def _dump(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj).decode()


def welcome(session: str, node: str, heartbeat: float) -> str:
    return _dump(
        {"type": "welcome", "protocol": PROTOCOL_VERSION, "session": session, "node": node, "heartbeat": heartbeat}
    )


def subscribed(topics: tuple[str, ...], seq: int, epoch: str, recovered: bool) -> str:
    return _dump({"type": "subscribed", "topics": list(topics), "seq": seq, "epoch": epoch, "recovered": recovered})


def unsubscribed(topics: tuple[str, ...]) -> str:
    return _dump({"type": "unsubscribed", "topics": list(topics)})


def pong(ident: Any, ts: int) -> str:
    return _dump({"type": "pong", "id": ident, "ts": ts})


def error_body(code: ErrorCode, message: str, **extra: Any) -> dict[str, Any]:
    """An ``error`` frame as an object: also the body of an HTTP refusal (SSE, Origin)."""
    return {"type": "error", "code": code.value, "message": message, **extra}


def error(code: ErrorCode, message: str, **extra: Any) -> str:
    return _dump(error_body(code, message, **extra))


def gap(topic: str, reason: str) -> str:
    return _dump({"type": "gap", "topic": topic, "reason": reason})


def msg(
    topic: str,
    seq: int,
    entry_id: str,
    ts: int,
    data: bytes,
    trace: str | None = None,
    hops: dict[str, int] | None = None,
) -> str:
    """One ``msg`` object. ``data`` is already-JSON bytes, spliced in without re-encoding."""
    head = orjson.dumps({"type": "msg", "topic": topic, "seq": seq, "id": entry_id, "ts": ts})
    if trace is not None:
        head = head[:-1] + b',"trace":' + orjson.dumps(trace) + b',"hops":' + orjson.dumps(hops or {}) + b"}"
    return (head[:-1] + b',"data":' + data + b"}").decode()


def batch(msgs: list[str]) -> str:
    """Several encoded ``msg`` objects in one frame; one alone goes out as itself."""
    if len(msgs) == 1:
        return msgs[0]
    return '{"type":"batch","msgs":[' + ",".join(msgs) + "]}"


# ---- WebSocket framing, shared by every connection ---------------------------------


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final WebSocket text frame (RFC 6455 §5.2), as a server sends it."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


class FrameCache:
    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._batches: OrderedDict[tuple[int, ...], tuple[tuple[str, ...], str]] = OrderedDict()
        self._wire: OrderedDict[int, tuple[str, bytes]] = OrderedDict()

    def batch(self, frames: list[str]) -> str:
        """``batch(frames)``, the same ``str`` object for the same frames."""
        if len(frames) == 1:
            return frames[0]
        key = tuple(map(id, frames))
        found = self._batches.get(key)
        if found is not None:
            return found[1]
        joined = batch(frames)
        self._remember(self._batches, key, (tuple(frames), joined))
        return joined

    def wire(self, text: str) -> bytes:
        """The WebSocket frame carrying ``text``, serialized once per ``str`` object."""
        found = self._wire.get(id(text))
        if found is not None and found[0] is text:
            return found[1]
        frame = text_frame(text.encode())
        self._remember(self._wire, id(text), (text, frame))
        return frame

    def _remember(self, cache: OrderedDict[K, V], key: K, value: V) -> None:
        cache[key] = value
        if len(cache) > self._size:
            cache.popitem(last=False)


# ---- Server-Sent Events -----------------------------------------------------------


def _data(frame: str) -> str:
    # One data line per line of the frame: a bus payload may hold newlines, which would
    # otherwise end the event early (SSE joins data lines back with "\n").
    if "\n" not in frame and "\r" not in frame:
        return f"data: {frame}\n"
    return "".join(f"data: {line}\n" for line in frame.splitlines())


def message_event(message: Message) -> str:
    """A ``msg`` or ``gap`` frame as an SSE event."""
    kind = "gap" if message.is_gap else "msg"
    return f"id: {message.seq}\nevent: {kind}\n{_data(message.frame)}\n"


def control_event(frame: str) -> str:
    """A control frame as an SSE event named by its type (the heartbeat as a comment)."""
    if frame == HEARTBEAT:
        return ": ping\n\n"
    kind = frame[len(_TYPE):frame.index('"', len(_TYPE))] if frame.startswith(_TYPE) else "message"
    return f"event: {kind}\n{_data(frame)}\n"


def close_event(code: int, reason: str) -> str:
    """The event that ends an SSE stream where a WebSocket would get a close code."""
    return f"event: close\n{_data(orjson.dumps({'type': 'close', 'code': code, 'reason': reason}).decode())}\n"
