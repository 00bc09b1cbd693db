"""One converge at a time per cluster, whoever starts it (a person's apply or the agent).

The lock is a file in a directory only root may enter (`/run/picl/lock`, 0700): no other user
can hold the lock, read it, or point it at another file. Anything else found there (a
directory someone else made or may write in, a symbolic link, a file not root's) is refused,
never followed or truncated.

Whoever holds the lock writes into the file what it is doing (`Holder`: what, pid, host, since
when, which revision), so that whoever finds it taken can say who holds it. A second converge
waits for the lock a bounded time (`wait`), then fails saying who holds it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path

from picl.errors import PiclError

LOCK_DIR_ENV = "PICL_LOCK_DIR"
# Under /run, which only root may write in: in the world-writable /run/lock anyone could make
# the directory first after a boot, and picl would refuse it (a converge denied to root).
DEFAULT_LOCK_DIR = Path("/run/picl/lock")
POLL = 0.5  # seconds between two tries while waiting for the lock


@dataclass(frozen=True)
class Holder:
    """Who holds a converge lock, as its holder wrote it into the lock file."""

    what: str  # "picl apply by federico", "the agent's cycle 12 (push)"
    pid: int
    host: str
    since: float
    revision: str = ""  # what it converges to, when known

    @classmethod
    def read(cls, fd: int) -> Holder | None:
        """The record in an open lock file; None when there is none (or half of one)."""
        try:
            data = json.loads(os.pread(fd, 4096, 0))
            return cls(str(data["what"]), int(data["pid"]), str(data["host"]),
                       float(data["since"]), str(data.get("revision") or ""))
        except (ValueError, TypeError, KeyError):
            return None

    def __str__(self) -> str:
        revision = f", revision {self.revision}" if self.revision else ""
        return (f"{self.what} (pid {self.pid} on {self.host}, since {moment(self.since)}"
                f"{revision})")


def moment(when: float) -> str:
    """A time of day, with its date when it is not today's."""
    same_day = time.localtime(when)[:3] == time.localtime()[:3]
    return time.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S", time.localtime(when))


def as_duration(seconds: float) -> str:
    """Seconds as the command line takes them: 90 -> '1m30s'."""
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (rest, "s")) if n)
    return text or "0s"


class LockHeld(PiclError):
    """Someone else converges the cluster, and went on longer than we would wait."""

    def __init__(self, cluster: str, holder: Holder | None, waited: float):
        self.holder = holder
        self.waited = waited
        after = f" (waited {as_duration(waited)})" if waited else ""
        super().__init__(f"{cluster}: the cluster is being converged by "
                         f"{holder or 'another process'}{after}: one converge at a time")


def lock_directory() -> Path:
    """Where the converge locks are: $PICL_LOCK_DIR (tests, labs), else /run/picl/lock."""
    return Path(os.environ.get(LOCK_DIR_ENV) or DEFAULT_LOCK_DIR)


def _refuse(path: Path, why: str) -> PiclError:
    return PiclError(f"{path}: {why}; the converge lock is not safe there: remove it "
                     f"(sudo rm -r {path}) and run again")


def _open_directory(directory: Path) -> int:
    """The lock directory, made root's and 0700 if missing; refused if anyone else has a say."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.mkdir(directory, 0o700)
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        raise _refuse(directory, "a symbolic link" if directory.is_symlink() else
                      "not a directory") from None
    try:
        info = os.fstat(fd)
        if info.st_uid != 0:
            raise _refuse(directory, f"owned by uid {info.st_uid}, not root")
        if info.st_mode & 0o022:
            raise _refuse(directory, f"mode {stat.S_IMODE(info.st_mode):04o}: others may "
                                     "write in it")
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.fchmod(fd, 0o700)  # root's, as an older picl (or a umask) made it: tighten it
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_lock(directory: Path, name: str) -> int:
    """The lock file, made 0600 if missing, never through a link and never truncated here."""
    where = _open_directory(directory)
    path = directory / name
    try:
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=where)
        except OSError:
            raise _refuse(path, "a symbolic link" if path.is_symlink() else
                          "not a regular file") from None
    finally:
        os.close(where)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(path, "not a regular file")
        if info.st_uid != 0:
            raise _refuse(path, f"owned by uid {info.st_uid}, not root")
        if info.st_nlink != 1:
            raise _refuse(path, f"{info.st_nlink} names for one file (a hard link)")
        if info.st_mode & 0o077:
            os.fchmod(fd, 0o600)  # root's, from an older picl: nobody else may open it
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def converging(cluster: str, what: str, revision: str = "", wait: float = 0,
               waiting: Callable[[Holder | None], None] = lambda holder: None,
               directory: Path | None = None) -> Iterator[Holder]:
    """Hold the cluster's converge lock, saying in it `what` holds it and for which `revision`.

    If another converge holds it, wait up to `wait` seconds (calling `waiting` once, with who
    holds it), then raise LockHeld naming the holder. Only root converges: the lock is shared
    with the agent, which runs as root.
    """
    directory = directory or lock_directory()
    if os.geteuid() != 0:
        raise PiclError(f"{cluster}: converging needs root (the converge lock in {directory} "
                        "is root's, shared with the agent): run it with sudo, as "
                        "`sudo picl apply`")
    # Two labs of one spec are two clusters: each converges on its own.
    lab = os.environ.get("PICL_IN_LAB")
    name = f"{cluster}@lab-{lab}.lock" if lab else f"{cluster}.lock"
    if "/" in name or name.startswith("."):
        raise PiclError(f"{name!r}: not a lock file name")
    fd = _open_lock(directory, name)
    try:
        _take(fd, cluster, wait, waiting)
        me = Holder(what, os.getpid(), socket.gethostname(), time.time(), revision)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(asdict(me)) + "\n").encode(), 0)
        try:
            yield me
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # and with it the lock


def _take(fd: int, cluster: str, wait: float,
          waiting: Callable[[Holder | None], None]) -> None:
    """flock the file, trying again until `wait` seconds have passed."""
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = Holder.read(fd)
        left = deadline - time.monotonic()
        if left <= 0:
            raise LockHeld(cluster, holder, wait)
        if not told:
            waiting(holder)
            told = True
        time.sleep(min(POLL, left))
