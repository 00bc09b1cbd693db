"""The package as apply ships it to a node: standard library only, run by the system python3.

The service is started from a copy of the shipped files, as systemd would start it, follows a
change of the state file, and clears the strip when it is stopped.
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from picl.reconciler.leds.drivers import terminal_line
from picl.reconciler.leds.frames import DARK, frame
from picl.reconciler.leds.record import Record, write
from picl.reconciler.leds.service import NODE_HOME, SHIPPED, shipped

SYSTEM_PYTHON = "/usr/bin/python3"
DARK_LINE = terminal_line([DARK] * 8)


def test_shipped_files() -> None:
    assert sorted(shipped()) == sorted(f"leds/{name}" for name in SHIPPED)
    package = Path(__file__).resolve().parents[3] / "reconciler" / "leds"
    assert sorted(SHIPPED) == sorted(p.name for p in package.glob("*.py"))


@pytest.mark.parametrize("name", SHIPPED)
def test_imports_only_the_standard_library_and_itself(name: str) -> None:
    tree = ast.parse(shipped()[f"leds/{name}"])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops = {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            tops = {(node.module or "").split(".")[0]}
        else:
            continue
        assert tops <= sys.stdlib_module_names | {"__future__"}, f"{name} imports {tops}"


@pytest.mark.parametrize("name", SHIPPED)
def test_runs_on_bullseyes_python_3_9(name: str) -> None:
    source = shipped()[f"leds/{name}"].decode()
    ast.parse(source, feature_version=(3, 9))
    # Annotations such as `int | None` only parse on 3.9 when they are never evaluated.
    if ":" in source and "def " in source:
        assert "from __future__ import annotations" in source


@pytest.fixture
def node_home(tmp_path: Path) -> Path:
    """This package copied the way apply copies it under NODE_HOME on a node."""
    assert NODE_HOME == "/usr/local/lib/picl"
    for relative, content in shipped().items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(content)
    return tmp_path


def node_service(home: Path, *args: str) -> subprocess.Popen[str]:
    if not os.path.exists(SYSTEM_PYTHON):
        pytest.skip("no system python3")
    return subprocess.Popen(
        [SYSTEM_PYTHON, "-m", "leds", *args],
        env={"PYTHONPATH": str(home), "PATH": "/usr/bin:/bin"}, cwd="/",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def next_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, "the service stopped printing"
    return line.rstrip("\n")


def on_a_pi() -> bool:
    model = Path("/proc/device-tree/model")
    return model.exists() and "Raspberry Pi" in model.read_text(errors="replace")


@pytest.mark.timeout(30)
def test_service_follows_the_state_and_clears_on_stop(node_home: Path) -> None:
    state = node_home / "run" / "leds.json"
    write(Record("converged"), state)
    process = node_service(node_home, "--backend", "terminal", "--brightness", "0.1",
                           "--state-file", str(state))
    try:
        assert next_line(process) == terminal_line(frame("converged", 0, 0.1))
        write(Record("drifted"), state)
        seen = {next_line(process) for _ in range(2)}
        assert seen == {terminal_line(frame("drifted", s, 0.1)) for s in (0, 8)}
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert out.splitlines()[-1] == DARK_LINE


def test_service_shows_the_load(node_home: Path) -> None:
    process = node_service(node_home, "--backend", "terminal", "--mode", "load", "--frames", "1")
    out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    bar, cleared = out.splitlines()
    assert bar.startswith("\x1b[38;2;0;") and cleared == DARK_LINE


def test_service_off_clears_and_exits(node_home: Path) -> None:
    process = node_service(node_home, "--backend", "terminal", "--mode", "off")
    out, err = process.communicate(timeout=10)
    assert (process.returncode, out, err) == (0, DARK_LINE + "\n", "")


def test_service_without_a_strip_says_so_in_one_line(node_home: Path) -> None:
    if on_a_pi():
        pytest.skip("a real Raspberry Pi")
    process = node_service(node_home, "--backend", "blinkt")
    out, err = process.communicate(timeout=10)
    assert process.returncode == 78
    assert err.startswith("picl-leds: ") and err.count("\n") == 1 and "Traceback" not in err
