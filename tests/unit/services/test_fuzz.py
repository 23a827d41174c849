"""Property checks of what hostile input reaches first: frame parser, topic algebra, bus header parser."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.client import Client as NatsClient

from services.connections import Client
from services.protocol import ClientFrame, ProtocolError, parse_client_frame
from services.subjects import TopicError, matches, pattern_within, validate_pattern

TOKENS = st.sampled_from(["a", "b", "c"])  # few names, so patterns and topics overlap often
topics = st.lists(TOKENS, min_size=1, max_size=5).map(".".join)


@st.composite
def patterns(draw: st.DrawFn) -> str:
    tokens = draw(st.lists(st.one_of(TOKENS, st.just("*")), min_size=0, max_size=4))
    if not tokens or draw(st.booleans()):
        tokens.append(">")
    return ".".join(tokens)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
frame_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["subscribe", "unsubscribe", "ping", "report", "auth", "nope", ""]) | json_values},
    optional={"topics": st.lists(st.text(max_size=12) | json_values, max_size=6) | json_values,
              "since": st.integers() | st.dictionaries(st.text(max_size=8), json_values) | json_values,
              "epoch": json_values, "id": json_values, "ts": json_values, "token": json_values,
              "received": st.lists(st.dictionaries(st.sampled_from(["seq", "trace", "t"]), json_values)) | json_values,
              "latency": json_values},
)


def _parse(raw: str | bytes) -> ClientFrame | None:
    try:
        return parse_client_frame(raw)
    except ProtocolError:
        return None


@settings(max_examples=400)
@given(st.binary(max_size=200))
def test_parser_raises_only_protocol_error_on_random_bytes(raw: bytes) -> None:
    _parse(raw)


@settings(max_examples=400)
@given(frame_like)
def test_parser_raises_only_protocol_error_on_frame_shaped_objects(frame: dict[str, Any]) -> None:
    parsed = _parse(json.dumps(frame))  # json, not orjson: it writes integers past 64 bits too
    topics_of = getattr(parsed, "topics", ())
    for topic in topics_of:  # whatever it accepts as a topic is a valid pattern
        assert validate_pattern(topic) == topic


def test_parser_survives_deep_nesting_and_huge_numbers() -> None:
    for raw in ("[" * 100_000, '{"type":"ping","id":' + "9" * 5000 + "}", '{"type":"subscribe","topics":' +
                "[" * 2000 + "]" * 2000 + "}", json.dumps({"type": "ping", "ts": 1e308}), '{"type":"ping","ts":1e999}'):
        _parse(raw)


@settings(max_examples=700)
@given(patterns(), patterns(), st.lists(topics, min_size=1, max_size=30))
def test_pattern_within_implies_every_match_is_granted(pattern: str, grant: str, samples: list[str]) -> None:
    """pattern_within(p, g) ⇒ every topic p matches, g matches too (the no-leak property of grants)."""
    if pattern_within(pattern, grant):
        for topic in samples:
            if matches(pattern, topic):
                assert matches(grant, topic), (pattern, grant, topic)


@settings(max_examples=700)
@given(patterns(), patterns())
def test_pattern_within_is_not_too_strict_on_literals(pattern: str, grant: str) -> None:
    """A literal topic is within a grant exactly when the grant matches it."""
    literal = pattern.replace(".>", ".a").replace(">", "a").replace("*", "b")
    assert pattern_within(literal, grant) == matches(grant, literal)


@settings(max_examples=300)
@given(patterns())
def test_every_pattern_is_within_itself_and_within_the_full_wildcard(pattern: str) -> None:
    assert pattern_within(pattern, pattern)
    assert pattern_within(pattern, ">")


@settings(max_examples=500)
@given(st.text(max_size=300))
def test_validate_pattern_accepts_or_raises_topic_error(raw: str) -> None:
    try:
        validate_pattern(raw)
    except TopicError:
        return
    assert ">" not in raw.split(".")[:-1]


# Header blocks built from pieces that hit every branch: separators, whitespace around and
# inside names (incl. the ASCII separators str.isspace counts), non-ASCII names and values.
header_pieces = st.sampled_from([b"Tw-Ts", b"Nats-Msg-Id", b":", b": ", b"\r\n", b" ", b"\t", b"\x1c", b"\x1f",
                                 b"\xc3\xa9", b"\xff", b"v", b"1764433200123-0", b"", b"a b", b"\x0b"])


@settings(max_examples=2000, deadline=None)
@given(st.lists(header_pieces, max_size=24).map(b"".join))
def test_the_bus_clients_header_parser_agrees_with_nats_py(raw: bytes) -> None:
    assert Client._parse_header_lines(raw) == NatsClient._parse_header_lines(raw)
