"""Where frames are shown: a Blinkt! strip, the terminal, or nowhere, behind one interface.

Standard library only (the blinkt library is imported when a Blinkt! strip is opened): this
file is shipped to nodes with the rest of this package, so its errors are `LedError`, which
picl's command line turns into its own one-line errors.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any, Protocol, TextIO

from .frames import DARK, NUM_PIXELS, Frame

BACKENDS = ("blinkt", "terminal", "none")
MODEL_FILE = "/proc/device-tree/model"

# Where RPi.GPIO cannot reach the Pi 5's GPIO chip, rpi-lgpio stands in under the same name.
PI5_FIX = (
    "on a Raspberry Pi 5, where RPi.GPIO does not work, install its drop-in replacement "
    "rpi-lgpio: `sudo apt remove python3-rpi.gpio && sudo apt install python3-rpi-lgpio` "
    "(in a virtualenv: `pip uninstall RPi.GPIO && pip install rpi-lgpio`)"
)
GPIO_INSTALL = "`sudo apt install python3-rpi.gpio` (in a virtualenv: `pip install RPi.GPIO`)"


class LedError(Exception):
    """A strip that cannot be driven, and what to do about it, in one line."""


class Strip(Protocol):
    """Eight pixels that show frames."""

    def show(self, frame: Frame) -> None:
        """Show one frame: 8 pixels (r, g, b, brightness)."""

    def clear(self) -> None:
        """Turn every pixel off."""


class NoStrip:
    """No LEDs: frames go nowhere (nodes with `leds = "none"`, and scripts)."""

    def show(self, frame: Frame) -> None:
        """Show nothing."""

    def clear(self) -> None:
        """Clear nothing."""


# A dark pixel is drawn as a grey shaded block, so its position still shows on any background.
TERMINAL_DARK = "\x1b[38;2;60;60;60m\u2591\u2591"
TERMINAL_RESET = "\x1b[0m"


def terminal_pixel(pixel: tuple[int, int, int, float]) -> str:
    """One pixel as two true-colour (24-bit ANSI) full blocks, as bright as it looks on a strip,
    or a grey shade when dark."""
    r, g, b, brightness = pixel
    # The eye sees a light as about the cube root of its power (Stevens' power law): a strip at
    # 10% looks about half as bright as at full, not a tenth, and still plainly coloured.
    seen = max(brightness, 0.0) ** (1 / 3)
    r, g, b = (round(c * seen) for c in (r, g, b))
    if not (r or g or b):
        return TERMINAL_DARK
    return f"\x1b[38;2;{r};{g};{b}m\u2588\u2588"


def terminal_line(frame: Frame) -> str:
    """A frame as one line of the terminal: the 8 pixels, a space apart, then a colour reset."""
    return " ".join(terminal_pixel(p) for p in frame) + TERMINAL_RESET


class TerminalStrip:
    """The strip drawn in a terminal, so a person without one sees exactly what it would show.

    Colours are drawn as bright as they look on a strip: the spec's brightness (10% by default)
    taken literally would leave a terminal unreadable, where a strip at 10% still shows its
    colours plainly. On a terminal the line is redrawn in place (`live`); into a pipe or a log,
    each frame is a line of its own.
    """

    def __init__(self, stream: TextIO | None = None, live: bool | None = None):
        self.stream = stream if stream is not None else sys.stdout
        self.live = self.stream.isatty() if live is None else live

    def show(self, frame: Frame) -> None:
        """Draw one frame."""
        line = terminal_line(frame)
        self.stream.write(f"\r{line}" if self.live else f"{line}\n")
        self.stream.flush()

    def clear(self) -> None:
        """Draw the dark strip (and end the line being redrawn)."""
        self.show([DARK] * NUM_PIXELS)
        if self.live:
            self.stream.write("\n")
            self.stream.flush()


def apa102_level(brightness: float) -> int:
    """The APA102's 5-bit global brightness for 0..1; any light at all is at least 1 of 31."""
    if brightness <= 0:
        return 0
    return max(1, min(31, round(31 * brightness)))


def _board(model_file: str) -> str:
    try:
        with open(model_file, "rb") as model:
            return model.read().rstrip(b"\0\n").decode("utf-8", "replace")
    except OSError:
        return ""


class BlinktStrip:
    """A Pimoroni Blinkt! (8 APA102 pixels, data on GPIO 23, clock on GPIO 24) via `blinkt`.

    The library, and the RPi.GPIO it imports, are loaded here, when a strip is opened; RPi.GPIO
    only claims the pins at the first frame. Either step's failure is a `LedError` saying how
    to get a working RPi.GPIO, on a Pi 5 too.
    """

    def __init__(self, model_file: str = MODEL_FILE):
        self._model_file = model_file
        self._blinkt: Any = self._guarded(importlib.import_module, "blinkt")

    def show(self, frame: Frame) -> None:
        """Send one frame down the strip."""
        for index, (r, g, b, brightness) in enumerate(frame[:NUM_PIXELS]):
            # blinkt turns 0..1 into 5 bits with int(31 * x): level / 31 gives back level.
            self._blinkt.set_pixel(index, r, g, b, apa102_level(brightness) / 31)
        self._guarded(self._blinkt.show)

    def clear(self) -> None:
        """Turn every pixel off now, not at the next frame."""
        self._blinkt.clear()
        self._guarded(self._blinkt.show)

    def _guarded(self, call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except ModuleNotFoundError as exc:
            raise LedError(self._missing(exc.name or "")) from exc
        except RuntimeError as exc:
            raise LedError(self._refused(str(exc))) from exc

    def _missing(self, module: str) -> str:
        if module.split(".")[0] == "RPi":
            board = _board(self._model_file)
            fix = PI5_FIX if "Raspberry Pi 5" in board else f"{GPIO_INSTALL}; {PI5_FIX}"
            return f"the blinkt backend needs RPi.GPIO, which is not installed: {fix}"
        return (
            "the blinkt backend needs the blinkt library, which is not installed: "
            "`sudo apt install python3-blinkt` (in a virtualenv: `pip install blinkt`)"
        )

    def _refused(self, message: str) -> str:
        board = _board(self._model_file)
        if "Raspberry Pi 5" in board:
            return f"RPi.GPIO: {message} ({board}): {PI5_FIX}"
        if "Raspberry Pi" in board:
            return (
                f"RPi.GPIO: {message} ({board}): run as root, or as a user in the gpio group, "
                "and check that nothing else holds GPIO 23 and 24"
            )
        return (
            f"RPi.GPIO: {message}: {board or 'this machine'} does not look like a Raspberry Pi, "
            "so there is no Blinkt! to drive (to see the patterns here, use --backend "
            f"terminal); {PI5_FIX}"
        )


def open_strip(backend: str, *, stream: TextIO | None = None) -> Strip:
    """The strip for a backend name: "blinkt", "terminal" (on `stream`) or "none"."""
    if backend == "blinkt":
        return BlinktStrip()
    if backend == "terminal":
        return TerminalStrip(stream)
    if backend == "none":
        return NoStrip()
    raise LedError(f"unknown LED backend {backend!r}; known: {', '.join(BACKENDS)}")
