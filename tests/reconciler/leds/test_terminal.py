"""The terminal backend: exactly which ANSI 24-bit escapes draw each pixel and frame."""

from __future__ import annotations

import io

import pytest

from picl.reconciler.leds.drivers import (
    NoStrip,
    TerminalStrip,
    open_strip,
    terminal_line,
    terminal_pixel,
)
from picl.reconciler.leds.frames import DARK, frame

GREY = "\x1b[38;2;60;60;60m░░"
RESET = "\x1b[0m"


# Drawn as bright as a strip looks: the colour times the cube root of its brightness.
@pytest.mark.parametrize(("pixel", "drawn"), [
    ((255, 0, 0, 0.1), "\x1b[38;2;118;0;0m██"),
    ((255, 0, 0, 0.5), "\x1b[38;2;202;0;0m██"),
    ((255, 0, 0, 1.0), "\x1b[38;2;255;0;0m██"),
    ((0, 80, 255, 1.0), "\x1b[38;2;0;80;255m██"),
    ((0, 24, 76, 0.5), "\x1b[38;2;0;19;60m██"),
    ((20, 20, 20, 0.01), "\x1b[38;2;4;4;4m██"),
    ((1, 1, 1, 0.01), GREY),  # too dim to see
    (DARK, GREY),
    ((255, 255, 255, 0.0), GREY),
    ((0, 0, 0, 1.0), GREY),
])
def test_pixel(pixel: tuple[int, int, int, float], drawn: str) -> None:
    assert terminal_pixel(pixel) == drawn


def test_unreachable_line() -> None:
    cyan = "\x1b[38;2;0;102;118m██"
    assert terminal_line(frame("unreachable", 0, 0.1)) == " ".join(
        [cyan] + [GREY] * 6 + [cyan]) + RESET


def test_applying_line() -> None:
    assert terminal_line(frame("applying", 3, 0.1)) == (
        f"{GREY} \x1b[38;2;0;3;9m██ \x1b[38;2;0;11;35m██ \x1b[38;2;0;37;118m██ "
        f"{GREY} {GREY} {GREY} {GREY}{RESET}")


def test_into_a_pipe_each_frame_is_a_line() -> None:
    out = io.StringIO()
    strip = TerminalStrip(out)
    strip.show(frame("failed", 0, 0.1))
    strip.clear()
    red = "\x1b[38;2;118;0;0m██"
    assert out.getvalue() == " ".join([red] * 8) + RESET + "\n" + " ".join([GREY] * 8) + RESET + "\n"


def test_on_a_terminal_the_line_is_redrawn_in_place() -> None:
    out = io.StringIO()
    strip = TerminalStrip(out, live=True)
    strip.show(frame("converged", 0, 0.1))
    strip.show(frame("failed", 2, 0.1))
    strip.clear()
    green = "\x1b[38;2;0;118;0m██"
    dark = " ".join([GREY] * 8) + RESET
    assert out.getvalue() == (
        "\r" + " ".join([green] * 8) + RESET + "\r" + dark + "\r" + dark + "\n")


def test_backends_by_name() -> None:
    out = io.StringIO()
    terminal = open_strip("terminal", stream=out)
    assert isinstance(terminal, TerminalStrip) and terminal.stream is out
    none = open_strip("none")
    assert isinstance(none, NoStrip)
    none.show(frame("failed", 0))
    none.clear()


def test_unknown_backend() -> None:
    from picl.reconciler.leds.drivers import LedError

    with pytest.raises(LedError, match="unknown LED backend 'neopixel'; known: blinkt, terminal, none"):
        open_strip("neopixel")
