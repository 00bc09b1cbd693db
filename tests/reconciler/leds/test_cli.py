"""`picl leds ...` as a user runs it: the installed command, in a process of its own."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from picl.reconciler.leds.drivers import terminal_line, terminal_pixel
from picl.reconciler.leds.frames import DARK, SWEEP, frame, larson_frame, status_frame
from picl.reconciler.leds.record import Record, write

REPO = Path(__file__).resolve().parents[3]
PICL = REPO / ".venv" / "bin" / "picl"
DARK_LINE = terminal_line([DARK] * 8)


def picl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PICL), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def lines(*frames: list) -> list[str]:
    return [terminal_line(f) for f in frames]


@pytest.fixture
def here(tmp_path: Path) -> Path:
    """A directory without a cluster.toml: brightness is the spec's default, 0.1."""
    return tmp_path


# picl leds show ... --backend terminal: the lines drawn, then the dark strip it leaves.
SHOWN = [
    (["failed", "--frames", "4"],
     lines(frame("failed", 0, 0.1), frame("failed", 2, 0.1)) + [DARK_LINE]),
    (["converged", "--frames", "8"], lines(frame("converged", 0, 0.1)) + [DARK_LINE]),
    (["unreachable", "--frames", "3", "--brightness", "1"],
     lines(frame("unreachable", 0, 1.0), frame("unreachable", 2, 1.0)) + [DARK_LINE]),
    (["applying", "--frames", "3"],
     lines(*(frame("applying", s, 0.1) for s in range(3))) + [DARK_LINE]),
    (["converged", "failed", "suspended", "--frames", "1"],
     lines(status_frame(["converged", "failed", "suspended"], 0, 0.1)) + [DARK_LINE]),
]


@pytest.mark.parametrize(("args", "expected"), SHOWN)
def test_show(here: Path, args: list[str], expected: list[str]) -> None:
    done = picl("leds", "show", *args, "--backend", "terminal", cwd=here)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == expected


def test_show_follows_a_state_file(here: Path) -> None:
    write(Record("stalled"), here / "leds.json")
    done = picl("leds", "show", "--follow", "leds.json", "--frames", "2", "--backend",
                "terminal", cwd=here)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == lines(*(frame("stalled", s, 0.1) for s in (0, 1))) + [
        DARK_LINE]


def test_brightness_comes_from_the_spec(here: Path) -> None:
    spec = (REPO / "cluster.toml").read_text().replace("brightness = 0.1", "brightness = 0.0")
    assert "brightness = 0.0" in spec
    (here / "cluster.toml").write_text(spec)
    done = picl("leds", "show", "converged", "--frames", "1", "--backend", "terminal", cwd=here)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [DARK_LINE, DARK_LINE]


def test_brightness_shows_in_the_terminal_too(here: Path) -> None:
    drawn = [picl("leds", "show", "failed", "--frames", "1", "--backend", "terminal",
                  "--brightness", level, cwd=here).stdout.splitlines()[0].split(" ")[0]
             for level in ("0.05", "0.1", "0.5", "1")]
    reds = [int(pixel.split(";")[2]) for pixel in drawn]
    assert reds == sorted(set(reds)) and reds[-1] == 255


def test_following_a_missing_file_is_an_error(here: Path) -> None:
    done = picl("leds", "show", "--follow", "missing.json", "--frames", "1", "--backend",
                "terminal", cwd=here)
    assert done.returncode == 1
    assert "missing.json" in done.stderr and "does not exist" in done.stderr
    assert done.stdout == ""


def test_test_is_the_larson_scanner(here: Path) -> None:
    done = picl("leds", "test", "--frames", "16", "--backend", "terminal", cwd=here)
    assert done.returncode == 0, done.stderr
    drawn = done.stdout.splitlines()
    assert drawn == lines(*(larson_frame(s, 0.1) for s in range(16))) + [DARK_LINE]
    red = terminal_pixel((255, 0, 0, 0.1)).removesuffix("\u2588\u2588")
    assert [line.split(" ").index(next(p for p in line.split(" ") if p.startswith(red)))
            for line in drawn[:16]] == list(SWEEP)


def test_clear(here: Path) -> None:
    done = picl("leds", "clear", "--backend", "terminal", cwd=here)
    assert (done.returncode, done.stdout, done.stderr) == (0, DARK_LINE + "\n", "")


def test_load(here: Path) -> None:
    done = picl("leds", "load", "--frames", "1", "--backend", "terminal", cwd=here)
    assert done.returncode == 0, done.stderr
    bar, cleared = done.stdout.splitlines()
    assert bar.count("\x1b[38;2;") == 8 and cleared == DARK_LINE


@pytest.mark.parametrize("args", [
    ["show", "failed", "--frames", "2"], ["test", "--frames", "2"], ["clear"],
    ["load", "--frames", "2"],
])
def test_backend_none_shows_nothing(here: Path, args: list[str]) -> None:
    done = picl("leds", *args, "--backend", "none", cwd=here)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


@pytest.mark.parametrize("args", [["test"], ["clear"], ["show", "converged", "--frames", "1"]])
def test_blinkt_off_a_pi_is_one_line(here: Path, args: list[str]) -> None:
    model = Path("/proc/device-tree/model")
    if model.exists() and "Raspberry Pi" in model.read_text(errors="replace"):
        pytest.skip("a real Raspberry Pi")
    done = picl("leds", *args, "--backend", "blinkt", cwd=here)
    assert done.returncode == 1
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "RPi.GPIO" in done.stderr and "rpi-lgpio" in done.stderr


@pytest.mark.parametrize(("args", "message"), [
    # No state: follow the agent's status on the primary, which needs a spec to find it.
    (["show"], "cluster.toml: no such file"),
    (["show", "converged", "--follow", "leds.json"], "leds show: name states or --follow"),
    (["show", "converged", "--node", "node9"], "cluster.toml: no such file"),
    (["show", "green"], "'green' is not one of 'converged', 'applying'"),
    (["show", "failed", "--brightness", "2"], "2.0 is not in the range 0.0<=x<=1.0"),
    (["show", "failed", "--backend", "neopixel"], "'neopixel' is not one of 'blinkt'"),
    (["test", "--frames", "0"], "0 is not in the range x>=1"),
])
def test_wrong_input_is_one_line(here: Path, args: list[str], message: str) -> None:
    write(Record("converged"), here / "leds.json")
    done = picl("leds", *args, cwd=here)
    assert done.returncode == 1 and done.stdout == ""
    assert message in done.stderr and "Traceback" not in done.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stopping_clears_the_strip(here: Path, signum: int) -> None:
    process = subprocess.Popen(
        [str(PICL), "leds", "show", "failed", "--backend", "terminal"], cwd=here,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().rstrip("\n") == terminal_line(frame("failed", 0, 0.1))
    process.send_signal(signum)
    out, err = process.communicate(timeout=30)
    assert (process.returncode, err) == (0, "")
    assert out.splitlines()[-1] == DARK_LINE


def test_help_lists_what_each_pattern_means(here: Path) -> None:
    done = picl("leds", "show", "--help", cwd=here)
    assert done.returncode == 0
    for state in ("converged", "applying", "drifted", "failed", "stalled", "suspended",
                  "unreachable"):
        assert f"\n    {state} " in done.stdout
