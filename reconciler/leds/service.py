"""The LED service on every node: follow the agent's state file, or show the CPU load.

Run on a node with the system python3, from the copy of this package apply ships there:

    PYTHONPATH=/usr/local/lib/picl python3 -m leds --mode status --brightness 0.1

`unit()` is the systemd unit apply installs (`picl-leds.service`); `shipped()` the files it
copies. The strip is cleared when the service stops (SIGTERM, SIGINT, SIGHUP).
Standard library only.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from .drivers import BACKENDS, LedError, Strip, open_strip
from .frames import STEP_SECONDS, Frame, load_frame
from .record import STATE_FILE, Record, read

MODES = ("status", "load", "off")
UNIT_NAME = "picl-leds.service"
NODE_HOME = "/usr/local/lib/picl"  # this package is copied to NODE_HOME/leds on each node
SHIPPED = ("__init__.py", "__main__.py", "frames.py", "record.py", "drivers.py", "service.py")
EXIT_CONFIG = 78  # sysexits' EX_CONFIG: a strip that cannot be driven; systemd does not retry
REFRESH_SECONDS = 10.0  # an unchanged frame is sent again, mending a strip glitched since
PROC_STAT = "/proc/stat"


def play(
    strip: Strip,
    render: Callable[[int], Frame],
    *,
    frames: int | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Show `render(0)`, `render(1)`, ... one step every `STEP_SECONDS`, then clear the strip.

    Runs until `frames` steps are rendered or `stop` is set; returns the steps rendered. A
    frame equal to the last one shown is not sent again (before `REFRESH_SECONDS`), so a
    steady pattern is one line on a terminal. Every step is rendered, late or not: a slow
    strip slows the animation, it never skips a beat.
    """
    stop = stop or threading.Event()
    shown: Frame | None = None
    shown_at = 0.0
    step = 0
    start = clock()
    try:
        while not stop.is_set() and (frames is None or step < frames):
            current = render(step)
            if current != shown or clock() - shown_at >= REFRESH_SECONDS:
                strip.show(current)
                shown, shown_at = current, clock()
            step += 1
            delay = start + step * STEP_SECONDS - clock()
            if delay < -1.0:
                start = clock() - step * STEP_SECONDS  # far behind (a suspended laptop): resync
            elif delay > 0:
                stop.wait(delay)
    except BaseException:
        with suppress(Exception):
            strip.clear()
        raise
    strip.clear()
    return step


class StateFile:
    """The agent's record on this node, read again only when the file changes."""

    def __init__(self, path: str | os.PathLike[str] = STATE_FILE):
        self.path = Path(path)
        self._seen: tuple[int, int, int] | None = None
        self._record = Record()

    def record(self) -> Record:
        """The current record; `unknown` while there is no file."""
        try:
            info = self.path.stat()
        except OSError:
            self._seen, self._record = None, Record()
            return self._record
        seen = (info.st_ino, info.st_mtime_ns, info.st_size)
        if seen != self._seen:
            self._seen, self._record = seen, read(self.path)
        return self._record


def cpu_times(stat: str) -> tuple[int, int]:
    """(busy, total) jiffies from /proc/stat's first line; waiting on I/O counts as idle."""
    fields = stat.splitlines()[0].split()
    if fields[0] != "cpu":
        raise ValueError("not /proc/stat: its first line is the 'cpu' total")
    # user nice system idle iowait irq softirq steal; guest time is already in user and nice.
    times = [int(value) for value in fields[1:9]]
    total = sum(times)
    idle = times[3] + (times[4] if len(times) > 4 else 0)
    return total - idle, total


class CpuLoad:
    """The share of time the CPUs were busy since the last reading (since boot, at first)."""

    def __init__(self, path: str | os.PathLike[str] = PROC_STAT):
        self.path = Path(path)
        self._last = (0, 0)

    def sample(self) -> float:
        """Busy fraction 0..1 since the previous sample."""
        busy, total = cpu_times(self.path.read_text())
        last_busy, last_total = self._last
        self._last = (busy, total)
        if total <= last_total:
            return 0.0
        return min(max((busy - last_busy) / (total - last_total), 0.0), 1.0)


def follow_state(
    state_file: StateFile, brightness: float, now: Callable[[], float] = time.time
) -> Callable[[int], Frame]:
    """Render the agent's record as it changes (`status` mode)."""
    return lambda step: state_file.record().frame(step, brightness, now())


def follow_load(cpu: CpuLoad, brightness: float) -> Callable[[int], Frame]:
    """Render the CPU load, sampled once a second (`load` mode)."""
    per_sample = round(1 / STEP_SECONDS)
    bar = load_frame(cpu.sample(), brightness)

    def render(step: int) -> Frame:
        nonlocal bar
        if step and step % per_sample == 0:
            bar = load_frame(cpu.sample(), brightness)
        return bar

    return render


def serve(
    strip: Strip,
    mode: str,
    brightness: float,
    state_file: str | os.PathLike[str] = STATE_FILE,
    *,
    frames: int | None = None,
    stop: threading.Event | None = None,
    proc_stat: str | os.PathLike[str] = PROC_STAT,
) -> int:
    """Show this node's state (`status`) or CPU load (`load`) until stopped; `off` clears."""
    if mode == "off":
        strip.clear()
        return 0
    if mode == "status":
        render = follow_state(StateFile(state_file), brightness)
    elif mode == "load":
        render = follow_load(CpuLoad(proc_stat), brightness)
    else:
        raise ValueError(f"unknown LED mode {mode!r}; known: {', '.join(MODES)}")
    return play(strip, render, frames=frames, stop=stop)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM, SIGINT or SIGHUP, so a loop can stop and clear the strip."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _brightness(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def main(argv: list[str] | None = None) -> int:
    """The node service's command line; exit 0 when stopped, 78 when the strip cannot work."""
    parser = argparse.ArgumentParser(
        prog="python3 -m leds", description="Show this node's picl state on its LED strip."
    )
    parser.add_argument("--mode", choices=MODES, default="status")
    parser.add_argument("--brightness", type=_brightness, default=0.1, help="0..1")
    parser.add_argument("--backend", choices=BACKENDS, default="blinkt")
    parser.add_argument("--state-file", default=STATE_FILE, help=f"default {STATE_FILE}")
    parser.add_argument("--frames", type=int, default=None, help="stop after N frames")
    args = parser.parse_args(argv)
    stop = stop_on_signals()
    try:
        strip = open_strip(args.backend)
        serve(strip, args.mode, args.brightness, args.state_file, frames=args.frames, stop=stop)
    except LedError as exc:
        print(f"picl-leds: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


def unit(
    mode: str,
    brightness: float,
    backend: str = "blinkt",
    state_file: str = STATE_FILE,
    python: str = "/usr/bin/python3",
) -> str:
    """The systemd unit `picl-leds.service` that runs this service on a node."""
    if mode not in MODES or backend not in BACKENDS or not 0.0 <= brightness <= 1.0:
        raise ValueError(f"no LED service for mode={mode!r} backend={backend!r} {brightness=}")
    return f"""\
# Written by picl apply: edit cluster.toml's [leds] instead.
[Unit]
Description=picl LEDs: this node's state on its Blinkt! strip
After=local-fs.target

[Service]
Type=simple
Environment=PYTHONPATH={NODE_HOME}
ExecStart={python} -m leds --mode {mode} --brightness {brightness:g} --backend {backend} \
--state-file {state_file}
Restart=on-failure
RestartSec=10
RestartPreventExitStatus={EXIT_CONFIG}
TimeoutStopSec=5
Nice=10

[Install]
WantedBy=multi-user.target
"""


def shipped() -> dict[str, bytes]:
    """The files apply copies to a node: path under `NODE_HOME` -> content."""
    here = Path(__file__).resolve().parent
    return {f"leds/{name}": (here / name).read_bytes() for name in SHIPPED}
