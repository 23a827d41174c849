"""The inbound frame token bucket, on a fake clock."""

from __future__ import annotations

from gateway.ratelimit import FrameRateLimit, Verdict


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_one_told_drop_then_silent_drops_then_refill() -> None:
    clock = Clock()
    limit = FrameRateLimit(10, clock)
    assert [limit.check() for _ in range(20)] == [Verdict.ALLOW] * 20  # burst = 2 × rate
    assert limit.check() is Verdict.DROP_AND_TELL
    assert limit.check() is Verdict.DROP
    clock.now += 0.1  # one token back
    assert limit.check() is Verdict.ALLOW
    assert limit.check() is Verdict.DROP


def test_ten_times_the_rate_within_a_second_is_abuse() -> None:
    clock = Clock()
    limit = FrameRateLimit(10, clock)
    verdicts = [limit.check() for _ in range(20 + 100)]
    assert verdicts[-1] is Verdict.ABUSE and Verdict.ABUSE not in verdicts[:-1]


def test_drops_spread_over_seconds_are_not_abuse() -> None:
    clock = Clock()
    limit = FrameRateLimit(10, clock)
    for _ in range(20):
        limit.check()
    for _ in range(30):  # 3 s at 2 × the rate: half dropped, never abuse
        for _ in range(2):
            assert limit.check() is not Verdict.ABUSE
        clock.now += 0.1


def test_a_flood_just_under_the_abuse_line_is_abuse_once_sustained() -> None:
    """1. rate 10: 50 frames/s (5 × the rate, under the 100/s abuse line)  2. no abuse in the
    first windows  3. abuse once three whole seconds in a row were flooded."""
    clock = Clock()
    limit = FrameRateLimit(10, clock)
    verdicts = []
    for _ in range(50 * 5):
        verdicts.append(limit.check())
        clock.now += 0.02
    first = verdicts.index(Verdict.ABUSE)
    assert 3.0 <= first * 0.02 <= 4.5, first
