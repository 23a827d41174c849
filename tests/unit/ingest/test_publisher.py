"""The HPUB commands ingest builds: a header value can end no line but its own."""

from __future__ import annotations

import pytest

from ingest.publisher import _hpub
from services.connections import Client
from services.envelope import PUBLISH_TS

PAYLOAD = b'{"bid":1.5}'


def _parse(command: bytes) -> tuple[bytes, dict[str, str], bytes]:
    line, _, rest = command.partition(b"\r\n")
    _, subject, _, head_size, total = line.split(b" ")
    head, payload = rest[:int(head_size)], rest[int(head_size):int(total)]
    assert rest[int(total):] == b"\r\n" and head.startswith(b"NATS/1.0\r\n") and head.endswith(b"\r\n\r\n")
    return subject, Client._parse_header_lines(head[len(b"NATS/1.0\r\n"):]), payload


@pytest.mark.parametrize("stream", ["md:ticks", "md:a\r\nTw-Gap: trimmed", "md:b\n", "\rmd:c", "md:d\r\n\r\nX: y"])
def test_every_header_is_one_line_whatever_its_value(stream: str) -> None:
    headers = {"Nats-Msg-Id": f"{stream}:1-0", "Tw-Id": "1-0", "traceparent": f" {stream} "}
    subject, parsed, payload = _parse(_hpub("md.ticks.X", "_INBOX.r.1", headers, PAYLOAD, 42))
    assert subject == b"md.ticks.X" and payload == PAYLOAD
    flat = stream.strip().replace("\r", " ").replace("\n", " ")
    assert list(parsed) == ["Nats-Msg-Id", "Tw-Id", "traceparent", PUBLISH_TS]
    assert parsed["Nats-Msg-Id"] == f"{stream}:1-0".strip().replace("\r", " ").replace("\n", " ")
    assert parsed["traceparent"] == flat
    assert parsed[PUBLISH_TS] == "42"
