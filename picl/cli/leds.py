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
    NODE_HOME,
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


node_option = click.option(
    "--node", metavar="N",
    help="On that node's strip, over SSH (with --backend terminal: drawn here).",
)


def strip_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--backend, --brightness, --frames and --node, shared by the commands that animate."""
    options = (
        node_option,
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
    return env.spec.leds.brightness if env.spec_path.exists() else Leds().brightness


def _on_node(env: Env, node: str, python: str) -> int:
    """Run a snippet of the shipped LED package on a node; its strip (or output) is the node's."""
    import shlex
    import subprocess

    from picl.transport.connection import Connection

    cluster = env.spec
    try:
        address = str(cluster.node(node).address)
    except KeyError:
        raise PiclError(f"--node {node}: not a node of {env.spec_path}") from None
    remote = (f"test -d {NODE_HOME}/leds || {{ echo 'picl: no LED service on {node} "
              f"(leds = \"blinkt\" and picl apply install it)' >&2; exit 78; }}; "
              f"PYTHONPATH={NODE_HOME} exec python3 -u -c {shlex.quote(python)}")
    argv = Connection.from_environ().ssh_argv(address, remote)
    try:
        result = subprocess.run(argv, stdin=subprocess.DEVNULL)
    except KeyboardInterrupt:
        return ExitStatus.OK  # ssh hangs up: the node's strip is cleared by the service code
    if result.returncode not in (0, 130, 143):
        raise PiclError(f"leds on {node}: failed (exit {result.returncode})")
    return ExitStatus.OK


def _remote_play(render: str, backend: str, frames: int | None) -> str:
    """Python for the node: play `render` (a lambda of step) on its strip, then clear it."""
    return (
        "import time\n"
        "from leds.drivers import open_strip\n"
        "from leds.frames import larson_frame\n"
        "from leds.record import Record\n"
        "from leds.service import play, stop_on_signals\n"
        f"play(open_strip({backend!r}), {render}, frames={frames!r}, stop=stop_on_signals())\n"
    )


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
    "--follow", "state_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="FILE",
    help=f"Follow a state file as a node's LED service does (on a node: {STATE_FILE}).",
)
@strip_options
@click.pass_obj
def show(
    env: Env, states: tuple[str, ...], state_file: Path | None, backend: str,
    brightness: float | None, frames: int | None, node: str | None,
) -> int:
    """Show a state's pattern; with several states, pixel i shows node i's state.

    With no state, follow the agent's status live, as the primary's strip shows it (or
    --node N's): e.g. `picl --lab leds show --backend terminal`.
    """
    if states and state_file:
        raise PiclError("leds show: name states or --follow a state file, not both")
    level = _brightness(env, brightness)
    if not states and not state_file:
        target = node or env.spec.cluster.primary
        args = ["--mode", "status", "--backend", backend, "--brightness", f"{level:g}"]
        args += ["--frames", str(frames)] if frames else []
        return _on_node(env, target, f"from leds.service import main; main({args!r})")
    if node:
        if state_file:
            raise PiclError("leds show --follow reads a local file: use it without --node")
        record = (f"Record(state={states[0]!r})" if len(states) == 1
                  else f"Record(nodes={states!r})")
        render = f"lambda step: {record}.frame(step, {level!r}, time.time())"
        return _on_node(env, node, _remote_play(render, backend, frames))
    if state_file:
        return _animate(env, backend, follow_state(StateFile(state_file), level), frames)
    record = Record(state=states[0]) if len(states) == 1 else Record(nodes=states)
    return _animate(env, backend, lambda step: record.frame(step, level, time.time()), frames)


@leds.command()
@strip_options
@click.pass_obj
def test(env: Env, backend: str, brightness: float | None, frames: int | None,
         node: str | None) -> int:
    """The test pattern: the Larson scanner, for a few seconds (or --frames), then clear."""
    level = _brightness(env, brightness)
    count = frames or TEST_SECONDS * PER_SECOND
    if node:
        render = f"lambda step: larson_frame(step, {level!r})"
        return _on_node(env, node, _remote_play(render, backend, count))
    return _animate(env, backend, lambda step: larson_frame(step, level), count)


@leds.command()
@backend_option
@node_option
@click.pass_obj
def clear(env: Env, backend: str, node: str | None) -> int:
    """Turn every pixel off: mends a strip left in an inconsistent state."""
    if node:
        return _on_node(env, node, f"from leds.drivers import open_strip\n"
                                   f"open_strip({backend!r}).clear()\n")
    with _strip(env, backend) as strip:
        strip.clear()
    return ExitStatus.OK


@leds.command()
@strip_options
@click.pass_obj
def load(env: Env, backend: str, brightness: float | None, frames: int | None,
         node: str | None) -> int:
    """This machine's CPU load as a bar, from pixel 0 (green) to pixel 7 (red)."""
    if node:
        args = ["--mode", "load", "--backend", backend,
                "--brightness", f"{_brightness(env, brightness):g}"]
        args += ["--frames", str(frames)] if frames else []
        return _on_node(env, node, f"from leds.service import main; main({args!r})")
    if not os.path.exists(PROC_STAT):
        raise PiclError(f"{PROC_STAT}: not found; the CPU load is read from Linux's /proc/stat")
    render = follow_load(CpuLoad(PROC_STAT), _brightness(env, brightness))
    return _animate(env, backend, render, frames)
