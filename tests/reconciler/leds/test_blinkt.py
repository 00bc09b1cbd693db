"""The real blinkt library, driven end to end through a fake RPi.GPIO that records the pins.

The fake stands in for RPi.GPIO in `sys.modules`; blinkt bit-bangs the APA102 protocol on it
(data on GPIO 23, clock on GPIO 24). The test reads the data line at each rising clock edge,
decodes the APA102 frames (a start frame of 32 zero bits, per pixel 0b111 + 5-bit brightness
+ blue, green, red bytes, then an end frame of zero bits) and checks what the strip would show.
"""

from __future__ import annotations

import atexit
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from picl.reconciler.leds.drivers import BlinktStrip, LedError, apa102_level
from picl.reconciler.leds.frames import STATES, frame, load_frame, status_frame

DAT, CLK = 23, 24
Wire = tuple[int, int, int, int]  # red, green, blue, 5-bit brightness


class FakeGPIO(types.ModuleType):
    """RPi.GPIO as blinkt uses it, recording every pin write."""

    BCM = 11
    OUT = 0

    def __init__(self, refuse: str | None = None):
        super().__init__("RPi.GPIO")
        self.refuse = refuse
        self.mode: int | None = None
        self.pins: list[tuple[int, int]] = []
        self.writes: list[tuple[int, int]] = []
        self.cleaned = False

    def setmode(self, mode: int) -> None:
        self.mode = mode

    def setwarnings(self, flag: bool) -> None:
        pass

    def setup(self, pin: int, direction: int) -> None:
        if self.refuse:
            raise RuntimeError(self.refuse)
        self.pins.append((pin, direction))

    def output(self, pin: int, value: int) -> None:
        self.writes.append((pin, value))

    def cleanup(self) -> None:
        self.cleaned = True


def clocked_bits(writes: list[tuple[int, int]]) -> list[int]:
    """The data line's level at every rising edge of the clock line."""
    data = clock = 0
    bits = []
    for pin, value in writes:
        high = 1 if value else 0
        if pin == DAT:
            data = high
        elif pin == CLK:
            if high and not clock:
                bits.append(data)
            clock = high
        else:
            raise AssertionError(f"blinkt wrote to GPIO {pin}, not the Blinkt!'s 23 or 24")
    return bits


def apa102(bits: list[int]) -> list[list[Wire]]:
    """The frames an APA102 chain latches from a bit stream."""
    def number(word: list[int], start: int, end: int) -> int:
        return int("".join(map(str, word[start:end])), 2)

    frames: list[list[Wire]] = []
    i = 0
    while True:
        zeros = 0
        while i < len(bits) and bits[i] == 0:
            zeros, i = zeros + 1, i + 1
        if i == len(bits):
            assert not frames or zeros >= len(frames[-1]) // 2, "end frame too short to latch"
            return frames
        assert zeros >= 32, f"LED data after a start frame of only {zeros} zero bits"
        pixels: list[Wire] = []
        while i < len(bits) and bits[i] == 1:
            word = bits[i:i + 32]
            assert len(word) == 32 and word[:3] == [1, 1, 1], f"bad LED frame {word}"
            pixels.append((number(word, 24, 32), number(word, 16, 24), number(word, 8, 16),
                           number(word, 3, 8)))
            i += 32
        frames.append(pixels)


def on_the_wire(frame: list[tuple[int, int, int, float]]) -> list[Wire]:
    return [(r, g, b, apa102_level(brightness)) for r, g, b, brightness in frame]


def forget_blinkt() -> None:
    blinkt = sys.modules.pop("blinkt", None)
    if blinkt is not None and hasattr(blinkt, "_exit"):
        atexit.unregister(blinkt._exit)  # it would clear the fake strip at interpreter exit


@pytest.fixture
def gpio(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGPIO]:
    """A fake RPi.GPIO, and a blinkt freshly imported on top of it."""
    fake = FakeGPIO()
    package = types.ModuleType("RPi")
    package.__path__ = []
    package.GPIO = fake  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "RPi", package)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", fake)
    forget_blinkt()
    yield fake
    forget_blinkt()


def shown(gpio: FakeGPIO) -> list[list[Wire]]:
    return apa102(clocked_bits(gpio.writes))


def test_the_decoder_reads_a_hand_made_stream() -> None:
    bits = lambda value, width: [int(b) for b in f"{value:0{width}b}"]  # noqa: E731
    stream = [0] * 32 + bits(0b11100111, 8) + bits(3, 8) + bits(2, 8) + bits(1, 8) + [0] * 4
    assert apa102(stream) == [[(1, 2, 3, 7)]]
    with pytest.raises(AssertionError, match="only 31 zero bits"):
        apa102(stream[1:])


def test_pins_are_set_up_as_outputs(gpio: FakeGPIO) -> None:
    BlinktStrip().show(frame("converged", 0, 0.1))
    assert gpio.mode == FakeGPIO.BCM
    assert gpio.pins == [(DAT, FakeGPIO.OUT), (CLK, FakeGPIO.OUT)]


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("step", [0, 2, 9, 16])
def test_each_state_reaches_the_strip(gpio: FakeGPIO, state: str, step: int) -> None:
    sent = frame(state, step, 0.1)
    BlinktStrip().show(sent)
    assert shown(gpio) == [on_the_wire(sent)]


def test_a_sequence_of_frames_arrives_in_order(gpio: FakeGPIO) -> None:
    sent = [frame("applying", step, 0.2) for step in range(4)]
    strip = BlinktStrip()
    for f in sent:
        strip.show(f)
    assert shown(gpio) == [on_the_wire(f) for f in sent]


def test_failed_is_red_at_a_tenth_brightness(gpio: FakeGPIO) -> None:
    BlinktStrip().show(frame("failed", 0, 0.1))
    assert shown(gpio) == [[(255, 0, 0, 3)] * 8]


def test_node_pixels_and_load_bar(gpio: FakeGPIO) -> None:
    strip = BlinktStrip()
    strip.show(status_frame(["converged", "failed", "unreachable"], 0, 1.0))
    strip.show(load_frame(0.25, 0.5))
    nodes, bar = shown(gpio)
    assert nodes == [(0, 255, 0, 31), (255, 0, 0, 31), (0, 220, 255, 31)] + [(0, 0, 0, 0)] * 5
    assert bar == [(0, 255, 0, 16)] * 2 + [(0, 0, 0, 0)] * 6


# The spec's brightness (0..1) as the APA102's 5-bit global brightness on the wire.
@pytest.mark.parametrize(("brightness", "level"), [
    (0.0, 0), (0.01, 1), (0.05, 2), (0.1, 3), (0.5, 16), (0.9, 28), (1.0, 31),
])
def test_brightness_on_the_wire(gpio: FakeGPIO, brightness: float, level: int) -> None:
    BlinktStrip().show([(255, 255, 255, brightness)] * 8)
    assert {pixel[3] for pixel in shown(gpio)[0]} == {level}


def test_clear_turns_every_pixel_off_at_once(gpio: FakeGPIO) -> None:
    strip = BlinktStrip()
    strip.show(frame("failed", 0, 0.1))
    strip.clear()
    assert [pixel[:3] for pixel in shown(gpio)[-1]] == [(0, 0, 0)] * 8
    assert len(shown(gpio)) == 2


def test_blinkt_clears_the_strip_when_the_process_exits(gpio: FakeGPIO) -> None:
    BlinktStrip().show(frame("converged", 0, 0.1))
    sys.modules["blinkt"]._exit()
    assert [pixel[:3] for pixel in shown(gpio)[-1]] == [(0, 0, 0)] * 8
    assert gpio.cleaned


def model(tmp_path: Path, board: str | None) -> str:
    path = tmp_path / "model"
    if board is not None:
        path.write_bytes(board.encode() + b"\0")
    return str(path)


@pytest.mark.parametrize(("board", "message", "expected"), [
    ("Raspberry Pi 5 Model B Rev 1.0", "Cannot determine SOC peripheral base address",
     ["Cannot determine SOC peripheral base address (Raspberry Pi 5 Model B Rev 1.0)",
      "install its drop-in replacement rpi-lgpio", "sudo apt install python3-rpi-lgpio",
      "pip install rpi-lgpio"]),
    ("Raspberry Pi 4 Model B Rev 1.4", "No access to /dev/mem.  Try running as root!",
     ["(Raspberry Pi 4 Model B Rev 1.4)", "gpio group"]),
    (None, "This module can only be run on a Raspberry Pi!",
     ["does not look like a Raspberry Pi", "--backend terminal", "rpi-lgpio"]),
])
def test_gpio_refusing_the_pins(
    gpio: FakeGPIO, tmp_path: Path, board: str | None, message: str, expected: list[str]
) -> None:
    gpio.refuse = message
    strip = BlinktStrip(model_file=model(tmp_path, board))
    with pytest.raises(LedError) as raised:
        strip.show(frame("converged", 0, 0.1))
    assert all(part in str(raised.value) for part in expected), str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.fixture
def no_blinkt_yet(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("RPi", "RPi.GPIO"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    forget_blinkt()
    yield
    forget_blinkt()


@pytest.mark.parametrize(("board", "expected"), [
    (None, ["RPi.GPIO, which is not installed", "sudo apt install python3-rpi.gpio",
            "pip install RPi.GPIO", "on a Raspberry Pi 5", "rpi-lgpio"]),
    ("Raspberry Pi 5 Model B Rev 1.0", ["RPi.GPIO, which is not installed",
                                        "sudo apt install python3-rpi-lgpio"]),
])
def test_rpi_gpio_missing(
    monkeypatch: pytest.MonkeyPatch, no_blinkt_yet: None, tmp_path: Path, board: str | None,
    expected: list[str],
) -> None:
    monkeypatch.setitem(sys.modules, "RPi", None)
    with pytest.raises(LedError) as raised:
        BlinktStrip(model_file=model(tmp_path, board))
    assert all(part in str(raised.value) for part in expected), str(raised.value)


def test_rpi_gpio_refusing_to_import_off_a_pi(
    monkeypatch: pytest.MonkeyPatch, no_blinkt_yet: None, tmp_path: Path
) -> None:
    """What RPi.GPIO does on a laptop, or on a Pi 5: raise as soon as it is imported."""
    gpio = tmp_path / "site" / "RPi" / "GPIO"
    gpio.mkdir(parents=True)
    (gpio.parent / "__init__.py").write_text("")
    (gpio / "__init__.py").write_text(
        "raise RuntimeError('This module can only be run on a Raspberry Pi!')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(LedError) as raised:
        BlinktStrip(model_file=model(tmp_path, None))
    assert str(raised.value).startswith(
        "RPi.GPIO: This module can only be run on a Raspberry Pi!: this machine does not look "
        "like a Raspberry Pi")
    assert "rpi-lgpio" in str(raised.value)


def test_blinkt_missing(monkeypatch: pytest.MonkeyPatch, no_blinkt_yet: None) -> None:
    monkeypatch.setitem(sys.modules, "blinkt", None)
    with pytest.raises(LedError, match="needs the blinkt library.*python3-blinkt"):
        BlinktStrip()
