"""Entry → JetStream message rules (design §1), without servers."""

from __future__ import annotations

import orjson
import pytest

from ingest.mapping import (
    ID_TIME_OUT_OF_RANGE,
    MAX_TIME_US,
    NOT_JSON,
    TOO_LARGE,
    TS_NOT_INTEGER,
    TS_OUT_OF_RANGE,
    Message,
    Rejected,
    entry_key,
    format_key,
    gap_notice,
    headers_size,
    map_entry,
)
from ingest.reader import Gap
from services.envelope import ENTRY_ID, GAP, MSG_ID, ORIGIN_TS, PUBLISH_TS, READ_TS, TRACEPARENT, TRACESTATE

TRACE = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def mapped(
    fields: dict[bytes, bytes],
    *,
    stream: str = "md:ticks",
    entry_id: str = "1764433200123-4",
    max_payload: int = 1 << 20,
    max_message: int = 1 << 20,
) -> Message | Rejected:
    return map_entry(
        stream, entry_id, fields, prefix="md", read_us=42, max_payload=max_payload, max_message=max_message
    )


def message(fields: dict[bytes, bytes], **kwargs: str) -> Message:
    result = mapped(fields, **kwargs)  # type: ignore[arg-type]
    assert isinstance(result, Message), result
    return result


def test_symbol_routes_to_a_three_token_subject() -> None:
    msg = message({b"symbol": b"AAPL", b"data": b'{"bid": 1.5}'})
    assert msg.subject == "md.ticks.AAPL"
    assert msg.payload == b'{"bid":1.5}'  # compact JSON


def test_without_symbol_the_subject_is_the_channel() -> None:
    assert message({b"data": b"[1, 2]"}).subject == "md.ticks"


def test_empty_symbol_counts_as_absent() -> None:
    assert message({b"symbol": b"  ", b"data": b"1"}).subject == "md.ticks"


def test_unsafe_characters_never_reach_the_subject() -> None:
    msg = message({b"symbol": b"BRK.B *>\t x", b"data": b"{}"}, stream="md:fx.spot")
    assert msg.subject == "md.fx_spot.BRK_B_x"
    assert msg.subject.count(".") == 2


def test_flat_fields_without_data_become_a_json_object_of_strings() -> None:
    msg = message(
        {b"symbol": b"AAPL", b"bid": b"1.5", b"ask": b"1.6", b"ts": b"7", b"traceparent": TRACE, b"tracestate": b"a=b"}
    )
    assert orjson.loads(msg.payload) == {"bid": "1.5", "ask": "1.6"}


def test_data_that_is_not_json_is_rejected() -> None:
    assert mapped({b"data": b"{nope"}, entry_id="5-0") == Rejected("5-0", NOT_JSON)


def test_headers_carry_ids_and_times() -> None:
    msg = message({b"data": b"{}", b"ts": b"1764433200123456"}, entry_id="1764433200123-4")
    assert msg.headers == {
        MSG_ID: "md:ticks:1764433200123-4",
        ENTRY_ID: "1764433200123-4",
        ORIGIN_TS: "1764433200123456",
        READ_TS: "42",
    }


def test_without_ts_the_entry_id_gives_the_origin_time() -> None:
    assert message({b"data": b"{}"}, entry_id="1764433200123-4").headers[ORIGIN_TS] == "1764433200123000"


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        (b"soon", TS_NOT_INTEGER),
        (b"1e6", TS_NOT_INTEGER),
        (b" 7", TS_NOT_INTEGER),
        (b"", TS_NOT_INTEGER),
        (b"-3", TS_OUT_OF_RANGE),
        (b"999999999999999999999999999999", TS_OUT_OF_RANGE),
        (str(MAX_TIME_US).encode(), TS_OUT_OF_RANGE),
    ],
)
def test_a_ts_no_client_can_read_is_refused_with_the_reason(ts: bytes, reason: str) -> None:
    assert mapped({b"data": b"{}", b"ts": ts}, entry_id="5-0") == Rejected("5-0", reason)


def test_the_largest_readable_ts_passes() -> None:
    assert message({b"data": b"{}", b"ts": str(MAX_TIME_US - 1).encode()}).headers[ORIGIN_TS] == str(MAX_TIME_US - 1)


def test_an_entry_id_too_far_in_the_future_needs_a_ts() -> None:
    """Redis accepts explicit IDs up to 2^64-1 ms; as an origin time (µs) that passes 64 bits."""
    assert mapped({b"data": b"{}"}, entry_id="100000000000000000-0") == Rejected(
        "100000000000000000-0", ID_TIME_OUT_OF_RANGE
    )
    assert message({b"data": b"{}", b"ts": b"7"}, entry_id="100000000000000000-0").headers[ORIGIN_TS] == "7"


@pytest.mark.parametrize(
    "number", [b"123456789012345678901234567890", b"18446744073709551616", b"-9223372036854775809"]
)
def test_integers_beyond_64_bits_in_data_stay_exact(number: bytes) -> None:
    data = b'{"big": ' + number + ', "s": "é", "f": 1.5}'.encode()
    assert orjson.loads(message({b"data": data}).payload)["s"] == "é"
    assert message({b"data": data}).payload == b'{"big":' + number + rb',"s":"\u00e9","f":1.5}'


def test_an_integer_too_long_to_convert_is_not_json() -> None:
    assert mapped({b"data": b"9" * 5000}, entry_id="5-0") == Rejected("5-0", NOT_JSON)


def test_trace_context_is_copied() -> None:
    msg = message({b"data": b"{}", b"traceparent": TRACE, b"tracestate": b"vendor=x"})
    assert (msg.headers[TRACEPARENT], msg.headers[TRACESTATE]) == (TRACE.decode(), "vendor=x")


def test_trace_values_that_could_break_headers_are_dropped() -> None:
    msg = message({b"data": b"{}", b"traceparent": TRACE + b"\r\nX: y", b"tracestate": b"vendor=x"})
    assert TRACEPARENT not in msg.headers and TRACESTATE not in msg.headers


def test_payload_over_the_setting_is_too_large() -> None:
    assert mapped({b"data": b'"' + b"x" * 100 + b'"'}, max_payload=100) == Rejected("1764433200123-4", TOO_LARGE)


def test_headers_count_against_the_server_limit() -> None:
    fields = {b"data": b'"' + b"x" * 100 + b'"'}
    assert isinstance(mapped(fields, max_message=1000), Message)
    assert mapped(fields, max_message=200) == Rejected("1764433200123-4", TOO_LARGE)


@pytest.mark.parametrize(("lower", "higher"), [("9-0", "10-0"), ("5-9", "5-10")])
def test_entry_ids_compare_as_integer_pairs_where_strings_disagree(lower: str, higher: str) -> None:
    assert lower > higher  # why the high-water mark must not compare strings
    assert entry_key(lower) < entry_key(higher)


def test_entry_key_round_trips() -> None:
    assert format_key(entry_key("1764433200123-17")) == "1764433200123-17"


def test_a_gap_notice_goes_to_the_channel_subject_with_an_empty_payload() -> None:
    notice = gap_notice("md:ticks", "1764433200123-5", prefix="md")
    assert (notice.subject, notice.payload) == ("md.ticks", b"")
    assert notice.headers == {MSG_ID: "gap:md:ticks:1764433200123-5", GAP: "trimmed"}


def test_a_recorded_gap_names_the_first_id_after_the_last_one_read() -> None:
    gap = Gap.decode(b"1764433200123-4 7")
    assert (gap.after, gap.count, gap.first_missing) == ("1764433200123-4", 7, "1764433200123-5")
    assert Gap.decode(gap.encode()) == gap


@pytest.mark.parametrize("stream", ["md:ticks", "md:" + "é" * 300 + "\U0001f600" * 50])
def test_the_size_limit_is_exact_at_its_edge(stream: str) -> None:
    """The quick bound on the header block never decides a case the exact size would decide
    otherwise: with the largest trace headers kept and a long non-ASCII stream key, every
    payload size around the limit is refused exactly when payload + headers + Tw-Pub exceed it."""
    trace = {b"traceparent": b"0" * 512, b"tracestate": b"k=" + b"v" * 510}
    limit = 8192
    for size in range(limit - 3000, limit + 2):
        fields = {b"data": b'"' + b"x" * (size - 2) + b'"', **trace}
        exact = message({**fields, b"data": b"1"}, stream=stream)  # the same headers, any payload
        room = len(PUBLISH_TS) + 4 + 20  # Tw-Pub, stamped at publish
        too_large = size + headers_size(exact.headers) + room > limit
        result = mapped(fields, stream=stream, max_message=limit)
        assert isinstance(result, Rejected) == too_large, size
