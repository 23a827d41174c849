"""The replay ring: bounded, ordered, found by binary search."""

from __future__ import annotations

import pytest

from gateway.message import Message
from gateway.ring import ReplayRing


def msg(seq: int) -> Message:
    return Message(seq, "ticks.AAPL", f'{{"seq":{seq}}}')


def test_keeps_the_last_capacity_messages_in_order() -> None:
    ring = ReplayRing(3)
    for seq in (1, 2, 3, 4, 5):
        ring.append(msg(seq))
    assert len(ring) == 3
    assert [ring[i].seq for i in range(len(ring))] == [3, 4, 5]
    assert (ring.first_seq(), ring.last_seq()) == (3, 5)


def test_index_after_handles_holes_and_bounds() -> None:
    ring = ReplayRing(10)
    for seq in (2, 4, 7, 9):  # holes: deleted messages keep their seq
        ring.append(msg(seq))
    assert ring.index_after(0) == 0
    assert ring.index_after(2) == 1
    assert ring.index_after(5) == 2
    assert ring.index_after(9) == 4
    assert ring.index_after(100) == 4


def test_index_after_across_the_wrap() -> None:
    ring = ReplayRing(4)
    for seq in range(1, 12):
        ring.append(msg(seq))
    assert [ring[i].seq for i in range(4)] == [8, 9, 10, 11]
    assert ring.index_after(9) == 2 and ring[ring.index_after(9)].seq == 10


def test_refuses_out_of_order_and_empty_is_empty() -> None:
    ring = ReplayRing(2)
    assert ring.first_seq() is None and ring.index_after(5) == 0
    ring.append(msg(5))
    with pytest.raises(ValueError):
        ring.append(msg(5))
    with pytest.raises(IndexError):
        ring[1]
    ring.clear()
    assert len(ring) == 0
