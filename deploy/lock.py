"""One converge at a time per cluster, whoever starts it (a person's apply or the agent).

The lock is a file in a directory only root may enter (`/run/lock/picl`, 0700): no other user
can hold the lock, read it, or point it at another file. Anything else found there (a
directory someone else made or may write in, a symbolic link, a file not root's) is refused,
never followed or truncated.
"""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from picl.errors import PiclError

LOCK_DIR_ENV = "PICL_LOCK_DIR"
DEFAULT_LOCK_DIR = Path("/run/lock/picl")


def lock_directory() -> Path:
    """Where the converge locks are: $PICL_LOCK_DIR (tests, labs), else /run/lock/picl."""
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
def converging(cluster: str, directory: Path | None = None) -> Iterator[None]:
    """Hold the cluster's converge lock, or fail at once saying who holds it.

    Only root converges: the lock is shared with the agent, which runs as root.
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
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 256, 0).decode(errors="replace").strip() or "another process"
            raise PiclError(f"{cluster}: another apply is running ({holder}); "
                            "one at a time") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)
