"""The replay ring: the last N messages in seq order, found by binary search.

A fixed-size circular list: appends are O(1), lookups by seq O(log N), memory bounded by
N references. Stream sequences are increasing but may have holes (deleted messages), so
positions are found by search, never computed from the seq.
"""

from __future__ import annotations

from gateway.message import Message


class ReplayRing:
    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._capacity = capacity
        self._items: list[Message | None] = [None] * capacity
        self._start = 0  # physical index of the oldest entry
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> Message:
        """The ``index``-th oldest message (0 ≤ index < len)."""
        if not 0 <= index < self._len:
            raise IndexError(index)
        item = self._items[(self._start + index) % self._capacity]
        assert item is not None
        return item

    def append(self, message: Message) -> None:
        if self._len and message.seq <= self[self._len - 1].seq:
            raise ValueError(f"seq {message.seq} does not follow {self[self._len - 1].seq}")
        end = (self._start + self._len) % self._capacity
        self._items[end] = message
        if self._len == self._capacity:
            self._start = (self._start + 1) % self._capacity
        else:
            self._len += 1

    def clear(self) -> None:
        self._items = [None] * self._capacity
        self._start = 0
        self._len = 0

    def first_seq(self) -> int | None:
        return self[0].seq if self._len else None

    def last_seq(self) -> int | None:
        return self[self._len - 1].seq if self._len else None

    def index_after(self, seq: int) -> int:
        """Position of the first message with a seq greater than ``seq`` (``len`` if none)."""
        lo, hi = 0, self._len
        while lo < hi:
            mid = (lo + hi) // 2
            if self[mid].seq <= seq:
                lo = mid + 1
            else:
                hi = mid
        return lo
