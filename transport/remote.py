"""Commands on many nodes at once over plain OpenSSH: what `parallel-ssh` and `clush` do.

Every node gets an `ssh` process of its own, all started together; each is read by a thread of
its own so that a chatty node never blocks a quiet one. One deadline covers them all: a node that
has not answered by then is killed and reported as a failure, never waited for.

`as_user` wraps a command to run as a given user: logged in as that user, it runs as is; logged
in as root (the lab, or PICL_SSH_USER=root), through `runuser`; logged in as anyone else,
through `sudo -n`. A node without that user fails alone, saying so.
"""

from __future__ import annotations

import os
import queue
import shlex
import subprocess
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass

from picl.transport.connection import Connection

# The remote side stops the command this long after the local deadline, should ssh's end vanish.
REMOTE_GRACE = 5
# Written on stderr by the remote wrapper before the command starts: tells the command's own
# exit status 255 from ssh's (which means the connection failed).
STARTED = "@picl: started"
NO_USER = "@picl: no such user"


@dataclass
class Reply:
    """What one node answered to a command."""

    node: str
    status: int | None  # the command's exit status; None when it did not finish
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    error: str = ""  # why the node failed other than by the command's own status

    @property
    def ok(self) -> bool:
        return self.status == 0 and not self.error

    def output(self) -> str:
        """stdout then stderr, as a person reads them."""
        return self.stdout + self.stderr


def as_user(user: str | None, command: str, timeout: float) -> str:
    """Remote shell text running `command` with `sh -c` as `user`, in its home, bounded in time.

    Without a user, the command runs as whoever picl logs in as.
    """
    limit = f"timeout -k {REMOTE_GRACE} {max(1, int(timeout) + REMOTE_GRACE)}"
    # Without a terminal nothing tells a command that picl has gone (Ctrl-C, killed): its
    # stdin, held open by picl (see `ask`), ends then, and a watcher stops the command.
    run = (f"cd 2>/dev/null || cd /; exec 3<&0; {limit} sh -c {shlex.quote(command)} 3<&- & "
           "c=$!; { cat <&3 >/dev/null; kill $c; } >/dev/null 2>&1 & w=$!; exec 3<&-; "
           "wait $c; s=$?; kill $w 2>/dev/null; exit $s")
    if user is None:
        return f"echo {shlex.quote(STARTED)} >&2; {run}"
    u = shlex.quote(user)
    return "\n".join([
        f"if [ \"$(id -un)\" != {u} ] && ! id -u {u} >/dev/null 2>&1; then",
        f"  echo {shlex.quote(NO_USER)} >&2; exit 1",
        "fi",
        f"echo {shlex.quote(STARTED)} >&2",
        f"if [ \"$(id -un)\" = {u} ]; then {run}",
        f"elif [ \"$(id -u)\" = 0 ]; then exec runuser -u {u} -- sh -c {shlex.quote(run)}",
        f"else exec sudo -n -u {u} -H -- sh -c {shlex.quote(run)}",
        "fi",
    ])  # fmt: skip


def as_root(command: str) -> str:
    """Remote shell text running `command` with `sh -c` as root: as is when logged in as root,
    else through `sudo -n` (which fails rather than asks for a password)."""
    quoted = shlex.quote(command)
    return f'if [ "$(id -u)" = 0 ]; then exec sh -c {quoted}; else exec sudo -n sh -c {quoted}; fi'


def _collect(
    name: str, proc: subprocess.Popen[str], started: float, deadline: float, timeout: float,
    marked: bool, done: queue.SimpleQueue[Reply],
) -> None:
    try:
        try:
            out, err = proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                out, err = proc.communicate(timeout=REMOTE_GRACE)
            except subprocess.TimeoutExpired:  # a shared connection holds the output open
                out, err = "", ""
            reply = _reply(name, 0, out or "", err or "", time.monotonic() - started, True)
            ran = not reply.error  # its marker came back: the node answered, the command hung
            reply.status, reply.error = None, (f"still running after {timeout:g}s: stopped" if ran
                                               else f"no answer within {timeout:g}s")
            done.put(reply)
            return
        done.put(_reply(name, proc.returncode, out, err, time.monotonic() - started, marked))
    except Exception as exc:  # noqa: BLE001 - a reader must always answer, or `ask` waits
        done.put(Reply(name, None, error=f"cannot read its answer: {exc}"))


def _reply(name: str, status: int, out: str, err: str, seconds: float, marked: bool) -> Reply:
    """A finished ssh: the command's own answer, or why it never ran.

    Unmarked text has only ssh's status to go by, where 255 means it could not connect.
    """
    lines = err.splitlines(keepends=True)
    marks = [line.rstrip("\n") for line in lines]
    if NO_USER in marks:
        return Reply(name, None, out, "", seconds, error="no such user on this node")
    if STARTED in marks:
        del lines[marks.index(STARTED)]
        return Reply(name, status, out, "".join(lines), seconds)
    if not marked and status != 255:
        return Reply(name, status, out, err, seconds)
    why = err.strip().splitlines()[-1] if err.strip() else f"ssh exited {status}"
    return Reply(name, None, out, err, seconds,
                 error=why if why.startswith("ssh:") else f"ssh: {why}")


def ask(
    commands: dict[str, tuple[str, str]], connection: Connection, timeout: float,
    shared: bool = False,
) -> Generator[Reply, None, None]:
    """Run remote shell text on every node at once; yield each reply as it comes.

    `commands` maps a node's name to its (address, remote shell text); `shared`: over each
    node's shared connection (see transport.connection).

    With text from `as_user`, a reply's `status` is the command's own; with other text, ssh's
    (where 255 is taken as "could not connect").
    """
    done: queue.SimpleQueue[Reply] = queue.SimpleQueue()
    running: list[subprocess.Popen[str]] = []
    holding: list[int] = []
    started = time.monotonic()
    deadline = started + timeout
    try:
        for name, (address, remote) in commands.items():
            marked = STARTED in remote  # text from `as_user`
            # Its stdin stays open as long as picl runs: `as_user`'s watcher waits for its end.
            stdin, held = os.pipe() if marked else (subprocess.DEVNULL, None)
            if held is not None:
                holding.append(held)
            try:
                proc = subprocess.Popen(
                    # sh whatever the login shell is: the text is POSIX shell.
                    connection.ssh_argv(address, ["sh", "-c", remote], shared),
                    stdin=stdin,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                )  # fmt: skip
            finally:
                if held is not None:
                    os.close(stdin)  # ssh's now, or no one's
            running.append(proc)
            threading.Thread(
                target=_collect, args=(name, proc, started, deadline, timeout, marked, done),
                daemon=True,
            ).start()
        for _ in running:
            # Each reader answers by the deadline plus its grace to reap ssh: never wait forever.
            yield done.get(timeout=timeout + 2 * REMOTE_GRACE)
    finally:
        for proc in running:
            if proc.poll() is None:
                proc.kill()
        for held in holding:
            os.close(held)
