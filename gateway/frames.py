"""Encodings of server frames: WebSocket framing, batches joined once, SSE events.

A message's ``msg`` frame is encoded once at the feed. Connections with the same
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
from typing import TypeVar

import orjson

from gateway.message import Message
from services import protocol

CACHE_SIZE = 256
HEARTBEAT = ""  # the control frame that an SSE stream sends as a ``: ping`` comment
_TYPE = '{"type":"'  # how every control frame begins (services.protocol puts the type first)
K = TypeVar("K")
V = TypeVar("V")


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
        """``protocol.batch(frames)``, the same ``str`` object for the same frames."""
        if len(frames) == 1:
            return frames[0]
        key = tuple(map(id, frames))
        found = self._batches.get(key)
        if found is not None:
            return found[1]
        joined = protocol.batch(frames)
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
