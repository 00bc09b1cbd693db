"""Commands on nodes as data: reading ssh's answers, and the remote wrapper that runs a command
as a given user (run here, on this machine)."""

from __future__ import annotations

import os
import subprocess

import pytest

from picl.transport.remote import (
    NO_USER,
    STARTED,
    _reply,
    as_root,
    as_user,
)


@pytest.mark.parametrize(("status", "stderr", "marked", "expected"), [
    # The wrapper's marker came back: the status is the command's own, even 255.
    (0, f"{STARTED}\n", True, (0, "", "")),
    (255, f"{STARTED}\nboom\n", True, (255, "boom\n", "")),
    (3, f"warning from ssh\n{STARTED}\nfailed\n", True, (3, "warning from ssh\nfailed\n", "")),
    # No marker: the command never ran; ssh says why.
    (255, "ssh: connect to host 10.1.10.242 port 22: Connection refused\n", True,
     (None, None, "ssh: connect to host 10.1.10.242 port 22: Connection refused")),
    (255, "Host key verification failed.\n", True,
     (None, None, "ssh: Host key verification failed.")),
    (1, f"{NO_USER}\n", True, (None, "", "no such user on this node")),
    # Text that is not the wrapper's: ssh's status is the answer, 255 is ssh's own failure.
    (0, "", False, (0, "", "")),
    (2, "cat: x\n", False, (2, "cat: x\n", "")),
    (255, "", False, (None, None, "ssh: ssh exited 255")),
])
def test_a_reply_tells_the_commands_failure_from_ssh_s(status, stderr, marked, expected) -> None:
    reply = _reply("node1", status, "", stderr, 0.1, marked)
    want_status, want_stderr, want_error = expected
    assert reply.status == want_status
    if want_stderr is not None:
        assert reply.stderr == want_stderr
    assert reply.error == want_error
    assert reply.ok is (want_status == 0 and not want_error)


def _remote(text: str, hold_stdin: bool = True) -> subprocess.CompletedProcess[str]:
    """Run remote shell text here, its stdin held open as `ask` holds it (or closed, as it is
    once picl has gone)."""
    stdin, held = os.pipe()
    try:
        if not hold_stdin:
            os.close(held)
        return subprocess.run(["sh", "-c", text], stdin=stdin, capture_output=True, text=True,
                              timeout=30)
    finally:
        os.close(stdin)
        if hold_stdin:
            os.close(held)


@pytest.mark.parametrize("user", [None, "nobody"])
def test_a_command_stops_when_picl_is_gone(user: str | None) -> None:
    """Its stdin ends (picl interrupted or killed, its ssh with it): the command is stopped,
    not left to run to its own timeout."""
    if user and os.geteuid() != 0:
        pytest.skip("runuser needs root")
    proc = _remote(as_user(user, "sleep 20; echo finished", 20), hold_stdin=False)
    assert proc.returncode != 0 and "finished" not in proc.stdout  # left alone, it would finish


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="runuser needs root")


@needs_root
def test_as_root_the_command_runs_as_the_user_in_its_home() -> None:
    proc = _remote(as_user("nobody", "id -un; pwd; exit 7", 10))
    assert proc.returncode == 7
    assert proc.stdout.split() == ["nobody", "/"]  # nobody's home does not exist: from /
    assert _reply("n", proc.returncode, proc.stdout, proc.stderr, 0, True).status == 7


@needs_root
def test_a_node_without_the_user_fails_before_running_anything() -> None:
    proc = _remote(as_user("no-such-user-picl", "echo ran", 10))
    reply = _reply("n", proc.returncode, proc.stdout, proc.stderr, 0, True)
    assert proc.stdout == ""
    assert reply.status is None and reply.error == "no such user on this node"


def test_without_a_user_the_command_runs_as_the_login() -> None:
    proc = _remote(as_user(None, "echo \"x'y\"; echo 'a  b' | tr a A", 10))
    assert proc.returncode == 0
    assert proc.stdout == "x'y\nA  b\n"  # shell text, its quoting kept through the wrapper
    assert proc.stderr == f"{STARTED}\n"


@needs_root
def test_as_root_the_command_runs_as_root_with_its_own_status() -> None:
    proc = _remote(as_root("id -u; echo \"'$0'\"; exit 3"))
    assert (proc.returncode, proc.stdout) == (3, "0\n'sh'\n")  # shell text, quoting kept
