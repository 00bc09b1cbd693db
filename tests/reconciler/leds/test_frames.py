"""The pure renderer, as data: every state's pattern, the node pixels, the load bar, brightness."""

from __future__ import annotations

import itertools

import pytest

from picl.reconciler.leds.frames import (
    CYCLE,
    DARK,
    LOAD_COLOURS,
    NUM_PIXELS,
    PATTERNS,
    RED,
    STATES,
    SWEEP,
    Frame,
    cycle,
    frame,
    larson_frame,
    load_frame,
    status_frame,
)

STRIP_STATES = [s for s in STATES if s != "unknown"]


def level(pixel: tuple[int, int, int, float]) -> float:
    """A pixel's intensity with its colour removed (every colour has a 255 component)."""
    return round(max(pixel[:3]) / 255, 3)


def shape(frame: Frame) -> str:
    """'#' full, '+' partly lit, '.' dark: the frame as a colour-blind eye sees it."""
    return "".join("." if p == DARK else "#" if level(p) == 1 else "+" for p in frame)


def rhythm(state: str, steps: int = 16) -> str:
    """One node's pixel over `steps` steps, as `shape` draws it."""
    return "".join(shape(status_frame([state], step))[0] for step in range(steps))


def period(state: str) -> int:
    frames = cycle(state)
    return next(p for p in range(1, CYCLE + 1) if all(
        frames[s] == frames[(s + p) % CYCLE] for s in range(CYCLE)))


# (state, step, shape): what the whole strip shows, pixel 0 first.
STRIP = [
    ("converged", 0, "########"),
    ("converged", 17, "########"),
    ("applying", 0, "#+......"),
    ("applying", 1, "+#......"),
    ("applying", 3, ".++#...."),
    ("applying", 7, ".....++#"),
    ("applying", 8, "......+#"),
    ("applying", 9, "......#+"),
    ("applying", 12, "...#++.."),
    ("applying", 15, "#++....."),
    ("applying", 16, "#+......"),
    ("drifted", 0, "#.#.#.#."),
    ("drifted", 7, "#.#.#.#."),
    ("drifted", 8, ".#.#.#.#"),
    ("drifted", 15, ".#.#.#.#"),
    ("failed", 0, "########"),
    ("failed", 1, "########"),
    ("failed", 2, "........"),
    ("failed", 3, "........"),
    ("failed", 4, "########"),
    ("stalled", 0, "########"),
    ("stalled", 1, "####...."),
    ("stalled", 2, "########"),
    ("stalled", 3, "####...."),
    ("stalled", 9, "####...."),
    ("suspended", 0, ".++..++."),
    ("suspended", 8, ".++..++."),
    ("suspended", 16, ".##..##."),
    ("unreachable", 0, "#......#"),
    ("unreachable", 1, "#......#"),
    ("unreachable", 2, "........"),
    ("unreachable", 16, "#......#"),
    ("unknown", 0, "........"),
    ("unknown", 5, "........"),
]


@pytest.mark.parametrize(("state", "step", "expected"), STRIP)
def test_strip_pattern(state: str, step: int, expected: str) -> None:
    assert shape(frame(state, step)) == expected


# How long each animation takes to repeat, in steps of 1/8 s.
PERIODS = {
    "converged": 1, "applying": 16, "drifted": 16, "failed": 4, "stalled": 16,
    "suspended": 32, "unreachable": 16, "unknown": 1,
}


@pytest.mark.parametrize(("state", "expected"), PERIODS.items())
def test_period(state: str, expected: int) -> None:
    assert period(state) == expected


# Which pixels a state ever lights: position, not hue, tells them apart.
POSITIONS = {
    "converged": set(range(8)), "applying": set(range(8)), "drifted": set(range(8)),
    "failed": set(range(8)), "stalled": set(range(8)), "suspended": {1, 2, 5, 6},
    "unreachable": {0, 7}, "unknown": set(),
}


@pytest.mark.parametrize(("state", "expected"), POSITIONS.items())
def test_positions(state: str, expected: set[int]) -> None:
    lit = {i for f in cycle(state) for i, p in enumerate(f) if p != DARK}
    assert lit == expected


@pytest.mark.parametrize("step", range(len(SWEEP)))
def test_scanner_eye_sweeps_and_lingers_at_the_ends(step: int) -> None:
    eye = shape(frame("applying", step)).index("#")
    assert eye == [0, 1, 2, 3, 4, 5, 6, 7, 7, 6, 5, 4, 3, 2, 1, 0][step]


@pytest.mark.parametrize(("a", "b"), list(itertools.combinations(STATES, 2)))
def test_states_differ_in_pattern_not_just_hue(a: str, b: str) -> None:
    """With colour removed, no state looks like another, from whatever moment one looks."""
    seen_a = [[level(p) for p in f] for f in cycle(a)]
    seen_b = [[level(p) for p in f] for f in cycle(b)]
    assert all(seen_a != seen_b[k:] + seen_b[:k] for k in range(CYCLE))


@pytest.mark.parametrize(("a", "b"), list(itertools.combinations(STATES, 2)))
def test_node_pixels_differ_in_rhythm_not_just_hue(a: str, b: str) -> None:
    seen_a = [level(status_frame([a], s)[0]) for s in range(CYCLE)]
    seen_b = [level(status_frame([b], s)[0]) for s in range(CYCLE)]
    assert all(seen_a != seen_b[k:] + seen_b[:k] for k in range(CYCLE))


def test_only_converged_is_steady_and_full() -> None:
    calm = [s for s in STATES if all(shape(f) == "########" for f in cycle(s))]
    assert calm == ["converged"]


def test_suspended_never_looks_healthy_nor_off() -> None:
    shapes = {shape(f) for f in cycle("suspended")}
    assert "########" not in shapes and "........" not in shapes


@pytest.mark.parametrize("state", STRIP_STATES)
def test_full_pixels_have_the_state_colour(state: str) -> None:
    full = {p[:3] for f in cycle(state) for p in f if level(p) == 1}
    assert full == {PATTERNS[state].colour}


@pytest.mark.parametrize("state", STATES)
def test_frames_are_eight_pixels_in_range(state: str) -> None:
    for f in cycle(state, 0.3):
        assert len(f) == NUM_PIXELS
        for r, g, b, brightness in f:
            assert all(isinstance(c, int) and 0 <= c <= 255 for c in (r, g, b))
            assert brightness in (0.0, 0.3)


# One node's pixel (status mode on the primary) over 16 steps: the strip pattern's rhythm.
RHYTHMS = {
    "converged": "################",
    "applying": "++++#+++++++#+++",
    "drifted": "########........",
    "failed": "##..##..##..##..",
    "stalled": "#.#.............",
    "suspended": "++++++++++++++++",
    "unreachable": "##..............",
    "unknown": "................",
}


@pytest.mark.parametrize(("state", "expected"), RHYTHMS.items())
def test_node_pixel_rhythm(state: str, expected: str) -> None:
    assert rhythm(state) == expected


def test_suspended_pixel_breathes_over_four_seconds() -> None:
    assert rhythm("suspended", 32) == "+" * 16 + "#" + "+" * 15


@pytest.mark.parametrize(("states", "step", "expected"), [
    ([], 0, "........"),
    (["converged"], 0, "#......."),
    (["converged", "failed", "unreachable"], 0, "###....."),
    (["converged", "failed", "unreachable"], 2, "#......."),
    (["converged", "drifted", "converged"], 8, "#.#....."),
    (["unknown", "converged"], 0, ".#......"),
    (["converged"] * 8, 0, "########"),
    (["converged"] * 8 + ["failed"], 2, "########"),
])
def test_pixel_i_shows_node_i(states: list[str], step: int, expected: str) -> None:
    assert shape(status_frame(states, step)) == expected


def test_node_pixel_has_its_state_colour() -> None:
    f = status_frame(["converged", "failed", "applying"], 4)
    assert [p[:3] for p in f[:3]] == [
        PATTERNS["converged"].colour, PATTERNS["failed"].colour, PATTERNS["applying"].colour]


# CPU load -> the bar, pixel 0 first; the last lit pixel shows the fraction left over.
LOAD = [
    (0.0, "........"),
    (-0.5, "........"),
    (0.0625, "+......."),
    (0.125, "#......."),
    (0.3, "##+....."),
    (0.5, "####...."),
    (0.8, "######+."),
    (1.0, "########"),
    (1.7, "########"),
]


@pytest.mark.parametrize(("load", "expected"), LOAD)
def test_load_bar(load: float, expected: str) -> None:
    assert shape(load_frame(load)) == expected


def test_load_bar_partial_pixel_level() -> None:
    assert load_frame(0.3)[2] == (0, round(255 * 0.4), 0, 1.0)


def test_load_bar_colours_by_position() -> None:
    assert [p[:3] for p in load_frame(1.0, 0.5)] == list(LOAD_COLOURS)
    assert list(LOAD_COLOURS) == [(0, 255, 0)] * 4 + [(255, 150, 0)] * 2 + [RED] * 2


@pytest.mark.parametrize("step", range(16))
def test_larson_test_pattern_is_the_red_scanner(step: int) -> None:
    test, applying = larson_frame(step, 0.2), frame("applying", step, 0.2)
    assert shape(test) == shape(applying)
    assert {p[:3] for p in test if level(p) == 1} == {RED}


# brightness: the spec's 0..1 goes to every lit pixel; the pattern itself is in the colour.
@pytest.mark.parametrize("brightness", [0.01, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("render", [
    lambda b: frame("stalled", 0, b),
    lambda b: status_frame(["converged", "failed"], 0, b),
    lambda b: load_frame(0.5, b),
    lambda b: larson_frame(3, b),
])
def test_brightness_goes_to_lit_pixels(brightness: float, render) -> None:  # noqa: ANN001
    f = render(brightness)
    assert {p[3] for p in f if p != DARK} == {brightness}
    assert [p[:3] for p in f] == [p[:3] for p in render(1.0)]


@pytest.mark.parametrize("state", STATES)
def test_brightness_zero_is_dark(state: str) -> None:
    assert all(f == [DARK] * 8 for f in cycle(state, 0.0))


@pytest.mark.parametrize("brightness", [-0.1, 1.01, 2])
def test_brightness_out_of_range(brightness: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        frame("converged", 0, brightness)
    with pytest.raises(ValueError, match="between 0 and 1"):
        load_frame(0.5, brightness)


def test_unknown_state_name() -> None:
    with pytest.raises(ValueError, match="unknown LED state 'green'"):
        frame("green", 0)
    with pytest.raises(ValueError, match="unknown LED state 'ok'"):
        status_frame(["converged", "ok"], 0)


def test_every_state_has_a_pattern_description() -> None:
    assert set(PATTERNS) == set(STATES)
    assert all(p.strip and p.pixel for p in PATTERNS.values())
