"""The LED patterns: a state, a list of node states or a CPU load in, eight pixels out.

Pure and standard library only: this file is shipped as-is to every node, where the LED
service runs it with the system python3 (3.9 on bullseye). Patterns differ by where pixels
light and how they move, not by hue alone, so they read from across a room and to people
who do not tell red from green.

A frame is a list of 8 pixels `(r, g, b, brightness)`: colour 0..255, brightness 0..1 as
the blinkt library takes it. Animations advance one step every `STEP_SECONDS`; every
pattern repeats within `CYCLE` steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

NUM_PIXELS = 8
STEP_SECONDS = 0.125  # 8 frames a second: smooth enough for the scanner, light on a Pi 3's CPU
CYCLE = 32  # steps (4 s): every pattern's period divides it

Colour = tuple[int, int, int]
Pixel = tuple[int, int, int, float]
Frame = list[Pixel]

DARK: Pixel = (0, 0, 0, 0.0)

GREEN: Colour = (0, 255, 0)
BLUE: Colour = (0, 80, 255)
AMBER: Colour = (255, 150, 0)
RED: Colour = (255, 0, 0)
MAGENTA: Colour = (255, 0, 200)
WHITE: Colour = (255, 255, 255)
CYAN: Colour = (0, 220, 255)


class Pattern(NamedTuple):
    """How a state looks: its colour, on the whole strip, and on one node's pixel."""

    colour: Colour
    strip: str
    pixel: str


PATTERNS: dict[str, Pattern] = {
    "converged": Pattern(GREEN, "all eight pixels steady: calm", "steady"),
    "applying": Pattern(
        BLUE, "one eye with a tail sweeping end to end (the Larson scanner)", "a quick soft pulse"
    ),
    "drifted": Pattern(
        AMBER, "every other pixel, odd and even swapping each second (report mode)", "slow blink"
    ),
    "failed": Pattern(RED, "all eight pixels blinking fast, twice a second", "fast blink"),
    "stalled": Pattern(
        MAGENTA,
        "left half steady (the last good state kept), right half a double flash every 2 s",
        "double flash every 2 s",
    ),
    "suspended": Pattern(
        WHITE, "two pause bars of two pixels, breathing slowly like a sleep light", "slow breathing"
    ),
    "unreachable": Pattern(
        CYAN, "only the two end pixels, one short flash every 2 s", "short flash every 2 s"
    ),
    "unknown": Pattern((0, 0, 0), "dark: no state yet", "dark"),
}
STATES: tuple[str, ...] = tuple(PATTERNS)

# The eye lingers a step at each end, as on the real scanner; 16 steps = 2 s per round trip.
SWEEP = (0, 1, 2, 3, 4, 5, 6, 7, 7, 6, 5, 4, 3, 2, 1, 0)
TAIL = (1.0, 0.3, 0.08)

LOAD_COLOURS: tuple[Colour, ...] = (GREEN,) * 4 + (AMBER,) * 2 + (RED,) * 2


def _triangle(step: int, period: int) -> float:
    """0 at the start of each period, 1 half way through."""
    half = period / 2
    return 1.0 - abs(step % period - half) / half


def _steady(step: int) -> float:
    return 1.0


def _pulse(step: int) -> float:
    return 0.25 + 0.75 * _triangle(step, 8)


def _slow_blink(step: int) -> float:
    return 1.0 if step % 16 < 8 else 0.0


def _fast_blink(step: int) -> float:
    return 1.0 if step % 4 < 2 else 0.0


def _double_flash(step: int) -> float:
    return 1.0 if step % 16 in (0, 2) else 0.0


def _breathe(step: int) -> float:
    return 0.1 + 0.9 * _triangle(step, CYCLE)


def _flash(step: int) -> float:
    return 1.0 if step % 16 in (0, 1) else 0.0


def _dark(step: int) -> float:
    return 0.0


# One node's pixel: a rhythm per state, the same rhythm its whole-strip pattern uses.
RHYTHMS: dict[str, Callable[[int], float]] = {
    "converged": _steady,
    "applying": _pulse,
    "drifted": _slow_blink,
    "failed": _fast_blink,
    "stalled": _double_flash,
    "suspended": _breathe,
    "unreachable": _flash,
    "unknown": _dark,
}


def scanner(step: int) -> list[float]:
    """The Larson scanner's levels at `step`: a bright eye and its fading tail."""
    levels = [0.0] * NUM_PIXELS
    for age, level in enumerate(TAIL):
        eye = SWEEP[(step - age) % len(SWEEP)]
        levels[eye] = max(levels[eye], level)
    return levels


def _strip_levels(state: str, step: int) -> list[float]:
    if state == "applying":
        return scanner(step)
    if state == "drifted":
        return [_slow_blink(step + 8 * (i % 2)) for i in range(NUM_PIXELS)]
    if state == "stalled":
        return [1.0] * 4 + [_double_flash(step)] * 4
    if state == "suspended":
        return [_breathe(step) if i in (1, 2, 5, 6) else 0.0 for i in range(NUM_PIXELS)]
    if state == "unreachable":
        return [_flash(step) if i in (0, NUM_PIXELS - 1) else 0.0 for i in range(NUM_PIXELS)]
    return [RHYTHMS[state](step)] * NUM_PIXELS


def _check(brightness: float) -> None:
    if not 0.0 <= brightness <= 1.0:
        raise ValueError(f"brightness {brightness!r} is not between 0 and 1")


def _known(state: str) -> str:
    if state not in PATTERNS:
        raise ValueError(f"unknown LED state {state!r}; known: {', '.join(STATES)}")
    return state


def pixel(colour: Colour, level: float, brightness: float) -> Pixel:
    """One pixel: `colour` dimmed to `level` (0..1) of the pattern, at the spec's brightness."""
    r, g, b = (round(c * level) for c in colour)
    if brightness <= 0 or not (r or g or b):
        return DARK
    return (r, g, b, brightness)


def frame(state: str, step: int, brightness: float = 1.0) -> Frame:
    """The whole strip showing one state (a worker's own) at animation `step`."""
    _check(brightness)
    colour = PATTERNS[_known(state)].colour
    return [pixel(colour, level, brightness) for level in _strip_levels(state, step)]


def status_frame(states: Sequence[str], step: int, brightness: float = 1.0) -> Frame:
    """Pixel i shows node i's state with that state's rhythm; past 8 nodes, the first 8."""
    _check(brightness)
    shown = [_known(state) for state in states][:NUM_PIXELS]
    shown += ["unknown"] * (NUM_PIXELS - len(shown))
    return [pixel(PATTERNS[s].colour, RHYTHMS[s](step), brightness) for s in shown]


def load_frame(load: float, brightness: float = 1.0) -> Frame:
    """CPU load (0..1) as a bar from pixel 0; the last lit pixel shows the fraction left."""
    _check(brightness)
    filled = min(max(load, 0.0), 1.0) * NUM_PIXELS
    return [
        pixel(LOAD_COLOURS[i], min(max(filled - i, 0.0), 1.0), brightness)
        for i in range(NUM_PIXELS)
    ]


def larson_frame(step: int, brightness: float = 1.0) -> Frame:
    """The test pattern: the red Larson scanner of 1980s television."""
    _check(brightness)
    return [pixel(RED, level, brightness) for level in scanner(step)]


def cycle(state: str, brightness: float = 1.0) -> list[Frame]:
    """One whole period of a state's animation, `CYCLE` frames."""
    return [frame(state, step, brightness) for step in range(CYCLE)]
