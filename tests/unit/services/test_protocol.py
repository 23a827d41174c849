"""Client frames are parsed strictly."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.protocol import ErrorCode, Ping, ProtocolError, Subscribe, Unsubscribe, parse_client_frame


def test_subscribe_with_since_forms() -> None:
    plain = parse_client_frame('{"type":"subscribe","topics":["ticks.AAPL","trades.*"]}')
    assert plain == Subscribe(("ticks.AAPL", "trades.*"), None, None)
    one = parse_client_frame('{"type":"subscribe","topics":["ticks.*"],"since":1041,"epoch":"e1"}')
    assert isinstance(one, Subscribe) and one.since_for("ticks.*") == 1041 and one.epoch == "e1"
    per = parse_client_frame('{"type":"subscribe","topics":["a.*","b.*"],"since":{"a.*":5}}')
    assert isinstance(per, Subscribe) and per.since_for("a.*") == 5 and per.since_for("b.*") is None


def test_unknown_fields_are_ignored() -> None:
    frame = parse_client_frame('{"type":"unsubscribe","topics":["x"],"extra":1}')
    assert frame == Unsubscribe(("x",))


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", ErrorCode.BAD_REQUEST),
        ("[1,2]", ErrorCode.BAD_REQUEST),
        ('{"type":"nope"}', ErrorCode.UNKNOWN_TYPE),
        ('{"topics":["a"]}', ErrorCode.UNKNOWN_TYPE),
        ('{"type":"subscribe","topics":[]}', ErrorCode.BAD_REQUEST),
        ('{"type":"subscribe","topics":"a"}', ErrorCode.BAD_REQUEST),
        ('{"type":"subscribe","topics":["a..b"]}', ErrorCode.BAD_TOPIC),
        ('{"type":"subscribe","topics":["a"],"since":-1}', ErrorCode.BAD_SINCE),
        ('{"type":"subscribe","topics":["a"],"since":true}', ErrorCode.BAD_SINCE),
        ('{"type":"subscribe","topics":["a"],"since":{"a":"x"}}', ErrorCode.BAD_SINCE),
        ('{"type":"ping","id":{"a":1}}', ErrorCode.BAD_REQUEST),
        ('{"type":"auth"}', ErrorCode.BAD_REQUEST),
    ],
)
def test_bad_frames_get_a_clear_error(text: str, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_frame(text)
    assert info.value.code is code and info.value.message


@given(st.binary(max_size=200) | st.text(max_size=200))
def test_parser_raises_only_protocol_errors(raw: bytes | str) -> None:
    try:
        parse_client_frame(raw)
    except ProtocolError:
        pass


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=20,
    )
)
def test_parser_handles_any_json(value: object) -> None:
    for frame in (
        value,
        {"type": "subscribe", "topics": value},
        {"type": "subscribe", "topics": ["a"], "since": value},
    ):
        try:
            parse_client_frame(json.dumps(frame))
        except ProtocolError:
            pass


def test_ping_parses_id_and_ts() -> None:
    assert parse_client_frame('{"type":"ping","id":7,"ts":1764433200123}') == Ping(7, 1764433200123)

