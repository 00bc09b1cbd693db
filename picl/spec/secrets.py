"""secrets.toml, the values cluster.toml refers to: checked private when read, and written only
whole (a 0600 temporary file in the same directory, fsync, rename) under a lock, never appended.

A plan reads it and never writes it; only a step that says so (apply, `picl secrets generate`)
adds a secret, through `ensure`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from picl.errors import PiclError

SECRETS_FILE = "secrets.toml"
LOCK_WAIT = 30  # seconds to wait for another picl adding a secret to the same directory


def check_private(path: Path, warn: Callable[[str], None] | None = None) -> None:
    """Refuse a secrets file other users can read or change, or that git tracks; warn when its
    group can read it, or when it sits in a git work tree that does not ignore it."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o007:
        raise PiclError(f"{path}: other users can read or change it (mode {mode:o}); run "
                        f"`chmod 600 {path}`, then change the secrets it holds")
    if mode & 0o070 and warn:
        warn(f"{path}: its group can read it (mode {mode:o}); `chmod 600 {path}` unless "
             "that group is meant to")
    tracked, ignored = _in_git(path)
    if tracked:
        raise PiclError(f"{path}: tracked by git, so its secrets are in the repository's "
                        f"history; run `git rm --cached {path.name}`, add it to .gitignore, "
                        "and change the secrets it holds")
    if ignored is False and warn:
        warn(f"{path}: in a git work tree that does not ignore it; add {path.name} to "
             ".gitignore so that it is never committed")


def _in_git(path: Path) -> tuple[bool, bool | None]:
    """(tracked by git, ignored by git or None when git cannot tell) for a file in a work tree."""
    real = path.resolve()
    directory = real.parent
    if not any((d / ".git").exists() for d in (directory, *directory.parents)):
        return False, None

    def git(*args: str) -> int | None:
        # fsmonitor off: a hostile repository's config must not run a command of its choosing.
        try:
            return subprocess.run(["git", "-c", "core.fsmonitor=false", "-C", str(directory),
                                   *args, "--", real.name], capture_output=True,
                                  timeout=10).returncode
        except (OSError, subprocess.TimeoutExpired):
            return None

    listed = git("ls-files", "--error-unmatch")
    if listed not in (0, 1):  # no git, or a repository git will not read (another owner)
        return False, None
    ignored = git("check-ignore", "-q")
    return listed == 0, True if ignored == 0 else False if ignored == 1 else None


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on the directory: one writer of its secrets file at a time."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise PiclError(f"{directory}: cannot open: {exc.strerror}") from None
    try:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise PiclError(f"{directory}: another process has held its lock for "
                                    f"{LOCK_WAIT}s while adding a secret; try again") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _entry(name: str, value: str) -> str:
    """`name = value` in TOML: lines of text (a private key) as a literal block, else a string."""
    if value.endswith("\n") and "'''" not in value and all(c == "\n" or c.isprintable()
                                                           for c in value):
        return f"{name} = '''\n{value}'''\n"
    return f"{name} = {json.dumps(value, ensure_ascii=False)}\n"


def _replace(path: Path, text: str, like: os.stat_result | None) -> None:
    """Write `text` to a 0600 temporary file beside `path`, fsync, and rename it over `path`."""
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
    except OSError as exc:
        raise PiclError(f"{path.parent}: cannot write the secrets file there: {exc.strerror}") \
            from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            if like is not None and os.geteuid() == 0:
                os.fchown(out.fileno(), like.st_uid, like.st_gid)  # root keeps the owner's file
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


def ensure(path: Path, name: str, make: Callable[[], str]) -> tuple[str, bool]:
    """The secret `name` from the file, or `make()`'s value added to it (the file is created,
    0600, if it does not exist). Returns (value, whether it was added).

    Under the directory's lock the file is read again: of two processes adding the same
    secret at once, the second gets the first one's value.
    """
    path = Path(os.path.realpath(path))  # a link to the secrets stays a link to them
    with _locked(path.parent):
        try:
            like: os.stat_result | None = path.stat()
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            like, text = None, ""
        except (OSError, UnicodeDecodeError) as exc:
            raise PiclError(f"{path}: cannot read: {exc}") from None
        if like is not None:
            check_private(path)
        try:
            current = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            raise PiclError(f"{path}: not valid TOML; `picl validate` says where") from None
        if name in current:
            if not isinstance(current[name], str):
                raise PiclError(f"{path}: {name}: a secret's value must be a string")
            return current[name], False
        value = make()
        if text and not text.endswith("\n"):
            text += "\n"
        text += _entry(name, value)
        if tomllib.loads(text).get(name) != value:  # never leave a file that reads otherwise
            raise PiclError(f"{path}: the secret {name!r} cannot be written as TOML")
        _replace(path, text, like)
        return value, True
