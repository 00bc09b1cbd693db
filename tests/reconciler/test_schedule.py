"""When the next cycle runs, as data: jitter, backoff, and whether the clock is sane."""

from __future__ import annotations

import pytest

from picl.reconciler.schedule import (
    CLOCK_FLOOR,
    CLOCK_SLACK,
    backoff,
    clock_is_sane,
    next_interval,
)

# (interval, draw) -> seconds: the interval moves by at most 10%, either way.
INTERVALS = [
    (300, 0.0, 270.0),
    (300, 0.5, 300.0),
    (300, 0.999999, 329.99994),
    (10, 0.25, 9.5),
]


@pytest.mark.parametrize(("interval", "draw", "expected"), INTERVALS)
def test_next_interval(interval: float, draw: float, expected: float) -> None:
    assert next_interval(interval, draw) == pytest.approx(expected)


# (failures in a row, interval) -> seconds with no jitter (draw 0.5): 5, 10, 20... up to it.
BACKOFF = [
    (1, 300, 5.0),
    (2, 300, 10.0),
    (3, 300, 20.0),
    (6, 300, 160.0),
    (7, 300, 300.0),
    (40, 300, 300.0),
    (1000, 300, 300.0),
    (1, 10, 5.0),
    (2, 10, 10.0),
    (3, 10, 10.0),
]


@pytest.mark.parametrize(("failures", "interval", "expected"), BACKOFF)
def test_backoff(failures: int, interval: float, expected: float) -> None:
    assert backoff(failures, interval, 0.5) == pytest.approx(expected)


def test_backoff_has_the_jitter() -> None:
    assert backoff(2, 300, 0.0) == pytest.approx(9.0)
    assert backoff(2, 300, 1.0) == pytest.approx(11.0)


def test_backoff_is_for_failures() -> None:
    with pytest.raises(ValueError):
        backoff(0, 300, 0.5)


LATER = CLOCK_FLOOR + 400 * 86_400.0
# (now, the agent's last word) -> sane?
CLOCKS = [
    (0.0, None, False),  # a board without an RTC boots in 1970
    (CLOCK_FLOOR - 1, None, False),
    (CLOCK_FLOOR, None, True),
    (LATER, None, True),
    (LATER, LATER - 60, True),
    (LATER - 3600, LATER, True),  # restored from a file at boot: an hour behind will do
    (LATER - CLOCK_SLACK - 1, LATER, False),  # gone back more than a day: wrong
    (CLOCK_FLOOR + 10, LATER, False),
]


@pytest.mark.parametrize(("now", "last_seen", "sane"), CLOCKS)
def test_clock_is_sane(now: float, last_seen: float | None, sane: bool) -> None:
    assert clock_is_sane(now, last_seen) is sane
