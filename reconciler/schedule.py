"""When the next cycle runs: the interval with jitter, backoff after a failure, a sane clock.

Pure: numbers in, numbers out (the random draw is an argument), so that tests are data.
"""

from __future__ import annotations

BACKOFF_FIRST = 5.0  # seconds before the first retry: a node rebooting is back within a minute
JITTER = 0.1  # +-10% of the interval: agents of several clusters never poll in step
# No clock is earlier than this on a board that ever ran this version of picl: a board
# without an RTC boots in 1970 (or at the last fake-hwclock save) until it syncs.
CLOCK_FLOOR = 1_767_225_600.0  # 2026-01-01T00:00:00Z
# A clock restored from a file at boot (fake-hwclock, timesyncd) lags by hours at most;
# certificates and signatures care about days. Only a clock further back than this is wrong.
CLOCK_SLACK = 86_400.0


def next_interval(interval: float, draw: float) -> float:
    """Seconds to the next drift check: `interval` moved by up to JITTER; `draw` is in [0, 1)."""
    return interval * (1 - JITTER + 2 * JITTER * draw)


def backoff(failures: int, interval: float, draw: float) -> float:
    """Seconds to wait after the `failures`-th transient failure in a row (1 for the first).

    Doubles from BACKOFF_FIRST, never past the interval (the drift check would come anyway),
    with the interval's jitter.
    """
    if failures < 1:
        raise ValueError("backoff is for a failure: failures >= 1")
    delay = min(BACKOFF_FIRST * 2 ** min(failures - 1, 32), interval)
    return delay * (1 - JITTER + 2 * JITTER * draw)


def clock_is_sane(now: float, last_seen: float | None) -> bool:
    """Whether the clock can be trusted: not before the floor, nor well before the agent's
    last word.

    `last_seen` is the last time the agent recorded a status: a clock a day earlier than that
    has gone back, as a board without an RTC does at boot until it syncs.
    """
    return now >= max(CLOCK_FLOOR, (last_seen or 0.0) - CLOCK_SLACK)
