"""Every stream message becomes a ``Message``, whatever its publisher put in it.

The feed, catch-up reads and the startup snapshot all decode through here. ingest refuses
entries no client could read (design §1), but stream ``MD`` takes publishes from anyone
with access to NATS: one message whose headers the encoder cannot carry (an origin time past
64 bits: orjson's "Integer exceeds 64-bit range") used to be dropped for every client
without a word, fail every resume with 1011, and crash-loop every gateway starting while it
was its subject's newest. Such a message is delivered as a ``gap`` notice on its topic
instead: its seq is kept, and the loss is said, never silent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from gateway import frames
from gateway.message import Message, from_bus
from services.subjects import topic_of

log = logging.getLogger(__name__)

UNDECODABLE = "undecodable"


def decode(seq: int, subject: str, headers: Mapping[str, str] | None, data: bytes,
           received_us: int | None = None, trace: str | None = None) -> Message:
    """``from_bus``, or a ``gap`` notice for a message it cannot encode."""
    try:
        return from_bus(seq, subject, headers, data, received_us, trace)
    except (TypeError, ValueError) as exc:  # orjson.JSONEncodeError is a TypeError
        topic = topic_of(subject)
        log.warning("feed: seq %d on %s cannot be encoded (%s): delivered as a gap notice", seq, subject, exc)
        return Message(seq, topic, frames.gap(topic, UNDECODABLE), is_gap=True)
