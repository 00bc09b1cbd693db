"""`picl leds`: show a state, the test pattern or the CPU load on a strip; clear a strip."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from picl.cli.env import Env
from picl.errors import PiclError
from picl.exit import ExitStatus
from picl.reconciler.leds.drivers import BACKENDS, LedError, Strip, open_strip
from picl.reconciler.leds.frames import PATTERNS, STATES, STEP_SECONDS, Frame, larson_frame
from picl.reconciler.leds.record import STATE_FILE, Record
from picl.reconciler.leds.service import (
    PROC_STAT,
    CpuLoad,
    StateFile,
    follow_load,
    follow_state,
    play,
    stop_on_signals,
)
from picl.spec import Leds

PER_SECOND = round(1 / STEP_SECONDS)
TEST_SECONDS = 5


def _patterns() -> str:
    return "\b\n" + "\n".join(f"  {state:<12} {p.strip}" for state, p in PATTERNS.items())


backend_option = click.option(
    "--backend", type=click.Choice(BACKENDS), default="blinkt", show_default=True,
    help="Where to show it: the Blinkt! strip, true-colour blocks in this terminal, or nowhere.",
)


def strip_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--backend, --brightness and --frames, shared by the commands that animate a strip."""
    options = (
        click.option(
            "--frames", type=click.IntRange(min=1), metavar="N",
            help=f"Stop after N frames ({PER_SECOND} a second) [default: until Ctrl-C].",
        ),
        click.option(
            "--brightness", type=click.FloatRange(0.0, 1.0), metavar="0..1",
            help="Pixel brightness [default: the spec's [leds] brightness].",
        ),
        backend_option,
    )
    return functools.reduce(lambda decorated, option: option(decorated), options, command)


def _brightness(env: Env, given: float | None) -> float:
    if given is not None:
        return given
    # Without a spec (a bare board, a laptop), the spec's own default applies.
    return env.cluster.leds.brightness if env.spec_path.exists() else Leds().brightness


@contextmanager
def _strip(env: Env, backend: str) -> Iterator[Strip]:
    try:
        yield open_strip(backend, stream=env.out.file)
    except LedError as exc:
        raise PiclError(str(exc)) from exc


def _animate(env: Env, backend: str, render: Callable[[int], Frame], frames: int | None) -> int:
    with _strip(env, backend) as strip:
        play(strip, render, frames=frames, stop=stop_on_signals())
    return ExitStatus.OK


@click.group()
def leds() -> None:
    """The cluster's state on the Blinkt! LED strips (or drawn in this terminal)."""


@leds.command(epilog=f"Patterns, the same on every strip:\n\n{_patterns()}")
@click.argument("states", nargs=-1, type=click.Choice(STATES), metavar="[STATE]...")
@click.option(
    "--follow", "state_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
    help=f"Follow a state file as a node's LED service does (on a node: {STATE_FILE}).",
)
@strip_options
@click.pass_obj
def show(
    env: Env, states: tuple[str, ...], state_file: Path | None, backend: str,
    brightness: float | None, frames: int | None,
) -> int:
    """Show a state's pattern; with several states, pixel i shows node i's state."""
    if bool(states) == bool(state_file):
        raise PiclError("leds show: name a state (or one per node), or --follow a state file")
    level = _brightness(env, brightness)
    if state_file:
        return _animate(env, backend, follow_state(StateFile(state_file), level), frames)
    record = Record(state=states[0]) if len(states) == 1 else Record(nodes=states)
    return _animate(env, backend, lambda step: record.frame(step, level, time.time()), frames)


@leds.command()
@strip_options
@click.pass_obj
def test(env: Env, backend: str, brightness: float | None, frames: int | None) -> int:
    """The test pattern: the Larson scanner, for a few seconds (or --frames), then clear."""
    level = _brightness(env, brightness)
    count = frames or TEST_SECONDS * PER_SECOND
    return _animate(env, backend, lambda step: larson_frame(step, level), count)


@leds.command()
@backend_option
@click.pass_obj
def clear(env: Env, backend: str) -> int:
    """Turn every pixel off: mends a strip left in an inconsistent state."""
    with _strip(env, backend) as strip:
        strip.clear()
    return ExitStatus.OK


@leds.command()
@strip_options
@click.pass_obj
def load(env: Env, backend: str, brightness: float | None, frames: int | None) -> int:
    """This machine's CPU load as a bar, from pixel 0 (green) to pixel 7 (red)."""
    if not os.path.exists(PROC_STAT):
        raise PiclError(f"{PROC_STAT}: not found; the CPU load is read from Linux's /proc/stat")
    render = follow_load(CpuLoad(PROC_STAT), _brightness(env, brightness))
    return _animate(env, backend, render, frames)
