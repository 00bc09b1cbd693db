"""The converge lock: one apply at a time per cluster, whoever starts it, and root's alone.

The attacks are real: a directory like /run/lock (world-writable, sticky), a user `nobody`
preparing traps in it (setpriv), root's converge walking into them.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from picl.deploy.lock import DEFAULT_LOCK_DIR, Holder, LockHeld, as_duration, converging, moment
from picl.errors import PiclError
from tests.conftest import SPEC
from tests.nobody import NOBODY, as_nobody, open_directory

VICTIM = "root:$6$not-a-real-hash:19000:0:99999:7:::\n"


def lock(directory: Path, cluster: str = "arrakis", **how: Any) -> Any:
    """The converge lock, held by a test."""
    return converging(cluster, "a test", directory=directory, **how)


def refused(directory: Path, why: str) -> None:
    with pytest.raises(PiclError, match=why), lock(directory):
        pass


@pytest.fixture
def run_lock() -> Iterator[Path]:
    """A directory like /run/lock: anyone may make things in it (mode 1777)."""
    with open_directory(0o1777) as shared:
        yield shared


def test_a_second_converge_of_the_same_cluster_is_refused(tmp_path: Path) -> None:
    with lock(tmp_path), pytest.raises(LockHeld, match="being converged by a test"), \
            lock(tmp_path):
        pass


def test_other_clusters_and_labs_converge_side_by_side(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    with lock(tmp_path), lock(tmp_path, "caladan"):
        monkeypatch.setenv("PICL_IN_LAB", "second")
        with lock(tmp_path):
            pass


def test_the_lock_is_free_again_after_use(tmp_path: Path) -> None:
    with lock(tmp_path):
        pass
    with lock(tmp_path):
        pass


def test_the_directory_is_roots_alone_whatever_the_umask(run_lock: Path) -> None:
    directory = run_lock / "picl"
    old = os.umask(0)
    try:
        with lock(directory):
            pass
    finally:
        os.umask(old)
    info, file = directory.stat(), (directory / "arrakis.lock").stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o700)
    assert (file.st_uid, stat.S_IMODE(file.st_mode)) == (0, 0o600)


def test_the_env_moves_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PICL_LOCK_DIR", str(tmp_path / "lock"))
    with converging("arrakis", "a test"):
        assert (tmp_path / "lock" / "arrakis.lock").is_file()


def test_no_other_user_can_hold_the_lock(run_lock: Path) -> None:
    # Before, the directory was 0755 and the file 0644: `flock FILE sleep infinity` by any
    # user kept the agent and every apply out.
    directory = run_lock / "picl"
    with lock(directory):
        pass
    held = as_nobody("flock", "-n", str(directory / "arrakis.lock"), "true")
    assert held.returncode != 0 and "Permission denied" in held.stderr
    with lock(directory):
        pass


def test_a_lock_file_linked_to_a_victim_is_refused_and_the_victim_untouched(
        run_lock: Path, tmp_path: Path) -> None:
    victim = tmp_path / "shadow"
    victim.write_text(VICTIM)
    directory = run_lock / "picl"
    directory.mkdir(mode=0o700)
    (directory / "arrakis.lock").symlink_to(victim)
    refused(directory, r"arrakis.lock: a symbolic link; .* remove it")
    assert victim.read_text() == VICTIM


def test_a_directory_another_user_made_first_is_refused(run_lock: Path, tmp_path: Path) -> None:
    # nobody gets there before root (after a boot, /run/lock is empty) and lays a trap.
    victim = tmp_path / "shadow"
    victim.write_text(VICTIM)
    victim.chmod(0o644)
    tmp_path.chmod(0o755)
    directory = run_lock / "picl"
    laid = as_nobody("sh", "-c", f"mkdir -m 777 {directory} && "
                                 f"ln -s {victim} {directory}/arrakis.lock")
    assert laid.returncode == 0, laid.stderr
    refused(directory, rf"{directory}: owned by uid {NOBODY}, not root")
    assert victim.read_text() == VICTIM


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702, 0o1777])
def test_a_directory_others_may_write_in_is_refused(run_lock: Path, mode: int) -> None:
    directory = run_lock / "picl"
    directory.mkdir()
    directory.chmod(mode)
    refused(directory, rf"mode {mode & 0o7777:04o}: others may write in it")
    assert not (directory / "arrakis.lock").exists()


def test_a_symlinked_directory_is_refused(run_lock: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (run_lock / "picl").symlink_to(elsewhere)
    refused(run_lock / "picl", "picl: a symbolic link")
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("make, why", [
    (lambda p: os.chown(p.touch() or p, NOBODY, NOBODY), f"owned by uid {NOBODY}, not root"),
    (lambda p: os.link(p.parent.parent / "other", p), "2 names for one file"),
    (lambda p: os.mkfifo(p), "not a regular file"),
    (lambda p: p.mkdir(), "not a regular file"),
])
def test_a_lock_file_that_is_not_roots_own_is_refused(run_lock: Path, make, why: str) -> None:  # noqa: ANN001
    directory = run_lock / "picl"
    directory.mkdir(mode=0o700)
    (run_lock / "other").write_text(VICTIM)
    make(directory / "arrakis.lock")
    refused(directory, f"arrakis.lock: {why}")
    assert (run_lock / "other").read_text() == VICTIM


def test_what_an_older_picl_left_is_tightened(run_lock: Path) -> None:
    directory = run_lock / "picl"
    directory.mkdir()
    directory.chmod(0o755)
    (directory / "arrakis.lock").write_text("pid 7\n")
    (directory / "arrakis.lock").chmod(0o644)
    with lock(directory):
        pass
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "arrakis.lock").stat().st_mode) == 0o600


def test_a_non_root_apply_says_to_use_sudo(run_lock: Path) -> None:
    # Before, it was "internal error ... PermissionError" (or the lock went to ~/.cache).
    env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent",
           "PICL_LOCK_DIR": str(run_lock / "picl")}
    result = as_nobody(sys.executable, "-c", "from picl.cli import main; main()", "--spec",
                       str(SPEC), "apply", "--yes", env=env,
                       read_anything=True)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"arrakis: converging needs root (the converge lock in {run_lock}/picl is root's, "
        "shared with the agent): run it with sudo, as `sudo picl apply`")
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert not (run_lock / "picl").exists()


# -- who holds it, and waiting for it ------------------------------------------------------------

def test_the_lock_says_who_holds_it(tmp_path: Path) -> None:
    revision = "main@sha1:1a2b3c4d5e6f"
    with converging("arrakis", "picl apply by federico", revision, directory=tmp_path) as me:
        assert json.loads((tmp_path / "arrakis.lock").read_text()) == {
            "what": "picl apply by federico", "pid": os.getpid(),
            "host": socket.gethostname(), "since": me.since, "revision": revision}
        with pytest.raises(LockHeld) as held, lock(tmp_path):
            pass
    assert held.value.holder == me
    assert str(held.value) == (
        f"arrakis: the cluster is being converged by picl apply by federico (pid {os.getpid()} "
        f"on {socket.gethostname()}, since {moment(me.since)}, revision {revision}): "
        "one converge at a time")
    assert (tmp_path / "arrakis.lock").read_text() == ""  # released: nobody holds it


def test_a_holder_that_wrote_nothing_yet_is_another_process(tmp_path: Path) -> None:
    with lock(tmp_path):
        (tmp_path / "arrakis.lock").write_text('{"what": "picl ap')
        with pytest.raises(LockHeld, match="converged by another process: one"), lock(tmp_path):
            pass


def test_a_second_converge_waits_until_the_first_is_done(tmp_path: Path) -> None:
    first_done = threading.Event()
    first_holds = threading.Event()

    def first() -> None:
        with converging("arrakis", "the agent's cycle 7 (push)", directory=tmp_path):
            first_holds.set()
            first_done.wait(60)

    holder = threading.Thread(target=first)
    holder.start()
    first_holds.wait(60)
    told: list[Holder | None] = []

    def waiting(who: Holder | None) -> None:
        told.append(who)
        first_done.set()  # the first converge ends while the second waits

    with lock(tmp_path, wait=600, waiting=waiting) as me:
        assert me.what == "a test"
    holder.join()
    assert [h.what if h else None for h in told] == ["the agent's cycle 7 (push)"]


def test_a_bounded_wait_ends_naming_the_holder(tmp_path: Path) -> None:
    with lock(tmp_path), pytest.raises(LockHeld, match=r"by a test .*\(waited 1s\)"), \
            lock(tmp_path, wait=1):
        pass


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (1, "1s"), (59.6, "1m"), (60, "1m"), (90, "1m30s"), (3600, "1h"),
    (3661, "1h1m1s"), (7200 + 120, "2h2m"),
])
def test_durations_as_the_command_line_takes_them(seconds: float, text: str) -> None:
    assert as_duration(seconds) == text


def test_a_moment_is_a_time_of_day_or_a_date_and_time() -> None:
    now = time.time()
    assert moment(now) == time.strftime("%H:%M:%S", time.localtime(now))
    assert moment(now - 3 * 86400) == time.strftime("%Y-%m-%d %H:%M:%S",
                                                    time.localtime(now - 3 * 86400))


def picl_apply(*args: str, directory: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PICL_LOCK_DIR=str(directory), PICL_SPEC=str(SPEC))
    env.pop("PICL_IN_LAB", None)
    return subprocess.Popen([sys.executable, "-c", "from picl.cli import main; main()",
                             "apply", "--yes", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def test_apply_fails_at_once_with_no_wait_naming_who_holds_the_lock(tmp_path: Path) -> None:
    with converging("arrakis", "picl apply by federico", "main@sha1:1a2b3c4d5e6f",
                    directory=tmp_path) as me:
        out, err = picl_apply("--lock-timeout", "0s", directory=tmp_path).communicate(timeout=120)
    assert err.splitlines()[-1] == (
        f"arrakis: the cluster is being converged by {me}: one converge at a time; "
        "--lock-timeout DURATION waits longer")
    assert out == ""


def test_apply_says_it_waits_and_for_whom(tmp_path: Path) -> None:
    with converging("arrakis", "the agent's cycle 7 (push)", "main@sha1:1a2b3c4d5e6f",
                    directory=tmp_path) as me:
        applying = picl_apply("--lock-timeout", "1h", directory=tmp_path)
        assert applying.stderr is not None
        said = next((line for line in applying.stderr if "waiting" in line), "")
        # Stopped here: past the lock it would reach for the nodes of the reference spec.
        applying.terminate()
        applying.wait(60)
    assert said == f"warning: waiting up to 1h for the converge lock, held by {me}\n"


@pytest.mark.parametrize("value", ["soon", "", "5 m", "-1s", "1.5m"])
def test_a_lock_timeout_that_is_not_a_duration_is_a_usage_error(tmp_path: Path,
                                                                value: str) -> None:
    out, err = picl_apply("--lock-timeout", value, directory=tmp_path).communicate(timeout=120)
    assert "Invalid value for '--lock-timeout'" in err and "is not a duration" in err
    assert "Traceback" not in err


def test_the_default_lock_directory_is_where_only_root_may_create_it() -> None:
    # In /run/lock (mode 1777) anyone could make picl's directory first and deny every converge.
    parent = next(p for p in DEFAULT_LOCK_DIR.parents if p.exists())
    assert parent != Path("/run/lock")
    for ancestor in (parent, *parent.parents):
        info = ancestor.stat()
        assert info.st_uid == 0 and not info.st_mode & 0o022, ancestor

