"""The LED service's parts: the animation loop, following the state file, the CPU load, the unit."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from picl.reconciler.leds import service
from picl.reconciler.leds.frames import DARK, frame, load_frame
from picl.reconciler.leds.record import Record, write
from picl.reconciler.leds.service import (
    EXIT_CONFIG,
    REFRESH_SECONDS,
    CpuLoad,
    StateFile,
    cpu_times,
    follow_load,
    play,
    serve,
    unit,
)

CLEARED = "cleared"


class Recorder:
    """A strip that remembers what it was asked to show."""

    def __init__(self, fail_at: int | None = None):
        self.shown: list[object] = []
        self.fail_at = fail_at

    def show(self, frame: list) -> None:
        if self.fail_at is not None and len(self.shown) == self.fail_at:
            raise OSError("strip gone")
        self.shown.append(frame)

    def clear(self) -> None:
        self.shown.append(CLEARED)


class Instant(threading.Event):
    """A stop event whose waits return at once, so loops run at full speed in tests."""

    def wait(self, timeout: float | None = None) -> bool:
        return self.is_set()


def test_play_shows_each_new_frame_then_clears() -> None:
    strip = Recorder()
    steps = play(strip, lambda step: frame("failed", step, 0.1), frames=8, stop=Instant())
    on, off = frame("failed", 0, 0.1), frame("failed", 2, 0.1)
    assert steps == 8
    assert strip.shown == [on, off, on, off, CLEARED]


def test_play_sends_a_steady_frame_once() -> None:
    strip = Recorder()
    play(strip, lambda step: frame("converged", step), frames=40, stop=Instant())
    assert strip.shown == [frame("converged", 0), CLEARED]


def test_play_sends_a_steady_frame_again_after_a_while() -> None:
    now = [0.0]

    def render(step: int) -> list:
        now[0] = step * 4.0  # each frame 4 s after the last: the third is 12 s after the first
        return frame("converged", step)

    strip = Recorder()
    play(strip, render, frames=4, stop=Instant(), clock=lambda: now[0])
    assert REFRESH_SECONDS == 10
    assert strip.shown == [frame("converged", 0)] * 2 + [CLEARED]


def test_play_stops_when_asked_and_clears() -> None:
    stop = Instant()
    strip = Recorder()

    def render(step: int) -> list:
        if step == 3:
            stop.set()
        return frame("applying", step)

    assert play(strip, render, stop=stop) == 4
    assert strip.shown[-1] == CLEARED and len(strip.shown) == 5


def test_play_clears_when_the_strip_fails() -> None:
    strip = Recorder(fail_at=2)
    with pytest.raises(OSError, match="strip gone"):
        play(strip, lambda step: frame("applying", step), stop=Instant())
    assert strip.shown[-1] == CLEARED


def test_play_keeps_the_tempo() -> None:
    started = time.monotonic()
    play(Recorder(), lambda step: frame("applying", step), frames=4, stop=threading.Event())
    assert 0.45 < time.monotonic() - started < 1.5


def test_state_file_is_followed(tmp_path: Path) -> None:
    path = tmp_path / "leds.json"
    followed = StateFile(path)
    assert followed.record() == Record()
    write(Record("applying"), path)
    assert followed.record() == Record("applying")
    write(Record("converged", ("converged", "failed")), path)
    assert followed.record() == Record("converged", ("converged", "failed"))
    path.unlink()
    assert followed.record() == Record()


def test_serve_status_follows_the_agent(tmp_path: Path) -> None:
    path = tmp_path / "leds.json"
    write(Record("failed"), path)
    strip = Recorder()
    serve(strip, "status", 0.1, path, frames=3, stop=Instant())
    assert strip.shown == [frame("failed", 0, 0.1), frame("failed", 2, 0.1), CLEARED]


def test_serve_status_without_a_state_file_is_dark(tmp_path: Path) -> None:
    strip = Recorder()
    serve(strip, "status", 0.1, tmp_path / "none.json", frames=3, stop=Instant())
    assert strip.shown == [[DARK] * 8, CLEARED]


def test_serve_off_only_clears() -> None:
    strip = Recorder()
    assert serve(strip, "off", 0.1) == 0
    assert strip.shown == [CLEARED]


def test_serve_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unknown LED mode 'disco'"):
        serve(Recorder(), "disco", 0.1)


def stat_line(user: int, nice: int, system: int, idle: int, iowait: int = 0, irq: int = 0,
              softirq: int = 0, steal: int = 0) -> str:
    return (f"cpu  {user} {nice} {system} {idle} {iowait} {irq} {softirq} {steal} 0 0\n"
            f"cpu0 {user} {nice} {system} {idle} {iowait} {irq} {softirq} {steal} 0 0\n"
            "intr 12345\nctxt 678\n")


# /proc/stat -> (busy, total) jiffies; waiting on I/O is idle, not load.
TIMES = [
    (stat_line(0, 0, 0, 100), (0, 100)),
    (stat_line(10, 5, 5, 80), (20, 100)),
    (stat_line(10, 0, 0, 50, iowait=40), (10, 100)),
    (stat_line(1, 1, 1, 1, 1, 1, 1, 1), (6, 8)),
    ("cpu  4705 356 584 3699 23 0 23 0\n", (5668, 9390)),
]


@pytest.mark.parametrize(("text", "expected"), TIMES)
def test_cpu_times(text: str, expected: tuple[int, int]) -> None:
    assert cpu_times(text) == expected


def test_cpu_times_wants_proc_stat() -> None:
    with pytest.raises(ValueError, match="not /proc/stat"):
        cpu_times("MemTotal: 1 kB\n")


@pytest.mark.parametrize(("before", "after", "load"), [
    (stat_line(0, 0, 0, 100), stat_line(0, 0, 0, 200), 0.0),
    (stat_line(0, 0, 0, 100), stat_line(50, 0, 0, 150), 0.5),
    (stat_line(0, 0, 0, 100), stat_line(80, 10, 10, 100), 1.0),
    (stat_line(10, 0, 0, 100), stat_line(30, 0, 10, 150, iowait=20), 0.3),
    (stat_line(10, 0, 0, 100), stat_line(10, 0, 0, 100), 0.0),
])
def test_cpu_load_between_samples(tmp_path: Path, before: str, after: str, load: float) -> None:
    proc = tmp_path / "stat"
    proc.write_text(before)
    cpu = CpuLoad(proc)
    cpu.sample()
    proc.write_text(after)
    assert cpu.sample() == pytest.approx(load)


def test_cpu_load_at_first_is_since_boot(tmp_path: Path) -> None:
    (tmp_path / "stat").write_text(stat_line(25, 0, 0, 75))
    assert CpuLoad(tmp_path / "stat").sample() == 0.25


def test_cpu_load_from_this_machine() -> None:
    assert 0.0 <= CpuLoad().sample() <= 1.0


class Loads:
    def __init__(self, *values: float):
        self.values = list(values)
        self.samples = 0

    def sample(self) -> float:
        self.samples += 1
        return self.values.pop(0)


def test_load_mode_samples_once_a_second() -> None:
    cpu = Loads(0.125, 0.5, 1.0)
    render = follow_load(cpu, 0.1)  # type: ignore[arg-type]
    frames = [render(step) for step in range(17)]
    assert cpu.samples == 3
    assert frames[0] == frames[7] == load_frame(0.125, 0.1)
    assert frames[8] == frames[15] == load_frame(0.5, 0.1)
    assert frames[16] == load_frame(1.0, 0.1)


def test_serve_load(tmp_path: Path) -> None:
    (tmp_path / "stat").write_text(stat_line(50, 0, 0, 50))
    strip = Recorder()
    serve(strip, "load", 0.2, frames=2, stop=Instant(), proc_stat=tmp_path / "stat")
    assert strip.shown == [load_frame(0.5, 0.2), CLEARED]


def test_unit() -> None:
    assert unit("status", 0.1) == """\
# Written by picl apply: edit cluster.toml's [leds] instead.
[Unit]
Description=picl LEDs: this node's state on its Blinkt! strip
After=local-fs.target

[Service]
Type=simple
Environment=PYTHONPATH=/usr/local/lib/picl
ExecStart=/usr/bin/python3 -m leds --mode status --brightness 0.1 --backend blinkt \
--state-file /run/picl/leds.json
Restart=on-failure
RestartSec=10
RestartPreventExitStatus=78
TimeoutStopSec=5
Nice=10

[Install]
WantedBy=multi-user.target
"""


@pytest.mark.parametrize(("args", "line"), [
    (("load", 1.0), "--mode load --brightness 1 --backend blinkt"),
    (("status", 0.25, "terminal"), "--mode status --brightness 0.25 --backend terminal"),
    (("off", 0.0, "none", "/tmp/leds.json"), "--brightness 0 --backend none --state-file /tmp/"),
])
def test_unit_arguments(args: tuple, line: str) -> None:
    assert line in unit(*args)


@pytest.mark.parametrize("args", [("disco", 0.1), ("status", 1.5), ("status", 0.1, "neopixel")])
def test_no_unit_for_what_cannot_run(args: tuple) -> None:
    with pytest.raises(ValueError, match="no LED service"):
        unit(*args)


def test_main_without_rpi_gpio(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "RPi", None)
    monkeypatch.delitem(sys.modules, "blinkt", raising=False)
    assert service.main(["--backend", "blinkt", "--frames", "1"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.startswith("picl-leds: the blinkt backend needs RPi.GPIO") and err.count("\n") == 1


def test_main_rejects_brightness_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        service.main(["--brightness", "3"])
    assert exited.value.code == 2
    assert "3 is not between 0 and 1" in capsys.readouterr().err
