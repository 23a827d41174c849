"""One bus message as the gateway keeps it: parsed once, its client frame encoded once.

Every connection that receives a message is handed the same ``frame`` string, so the cost
of a message is one decode of its headers and one encode, however many clients match.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway import frames
from services import envelope
from services.hops import entry_id_us, now_us
from services.subjects import covers_prefix, matches, topic_of
from services.telemetry import sampled


@dataclass(frozen=True, slots=True)
class Message:
    seq: int
    topic: str
    frame: str  # the encoded ``msg`` (or ``gap``) frame, shared by every connection
    is_gap: bool = False
    # Hop stamps (µs) of a message that carries them; feeds /api/latency.
    hops: Mapping[str, int] | None = None
    trace: str | None = None  # the traceparent its clients receive (sampled messages only)

    def matched_by(self, pattern: str) -> bool:
        """A message goes to the patterns matching its topic; a gap notice, which names a
        whole channel (``ticks``), to every pattern that covers some topic in it."""
        return covers_prefix(pattern, self.topic) if self.is_gap else matches(pattern, self.topic)


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def from_bus(seq: int, subject: str, headers: Mapping[str, str] | None, data: bytes,
             received_us: int | None = None, trace: str | None = None) -> Message:
    """Build the record and its frame from a stream message (live or read back).

    ``trace`` is the gateway's own span context for a sampled message; without it a sampled
    message carries the context it arrived with.
    """
    headers = headers or {}
    topic = topic_of(subject)
    reason = headers.get(envelope.GAP)
    if reason is not None:
        return Message(seq, topic, frames.gap(topic, reason), is_gap=True)
    entry_id = headers.get(envelope.ENTRY_ID, "")
    ts = _int(headers.get(envelope.ORIGIN_TS))
    if ts is None:
        ts = entry_id_us(entry_id) if entry_id[:1].isdigit() else 0
    read, publish = _int(headers.get(envelope.READ_TS)), _int(headers.get(envelope.PUBLISH_TS))
    hops: dict[str, int] | None = None
    if read is not None and publish is not None:
        hops = {"origin": ts, "read": read, "publish": publish,
                "gateway_receive": received_us if received_us is not None else now_us()}
    traceparent = headers.get(envelope.TRACEPARENT)
    # An empty payload is not JSON; send null rather than a broken frame.
    payload = data or b"null"
    if trace is None and sampled(traceparent):
        trace = traceparent
    if trace is not None:
        frame = frames.msg(topic, seq, entry_id, ts, payload, trace=trace, hops=hops or {"origin": ts})
    else:
        frame = frames.msg(topic, seq, entry_id, ts, payload)
    return Message(seq, topic, frame, hops=hops, trace=trace)
