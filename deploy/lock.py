"""One converge at a time per cluster, whoever starts it (a person's apply or the agent)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from picl.errors import PiclError

LOCK_DIR = Path(os.environ.get("PICL_LOCK_DIR", "/run/lock/picl"))


@contextmanager
def converging(cluster: str, directory: Path = LOCK_DIR) -> Iterator[None]:
    """Hold the cluster's converge lock, or fail at once saying who holds it."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        directory = Path.home() / ".cache" / "picl"
        directory.mkdir(parents=True, exist_ok=True)
    # Two labs of one spec are two clusters: each converges on its own.
    lab = os.environ.get("PICL_IN_LAB")
    path = directory / (f"{cluster}@lab-{lab}.lock" if lab else f"{cluster}.lock")
    with path.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise PiclError(f"{cluster}: another apply is running ({holder}); "
                            "one at a time") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}\n")
        lock.flush()
        try:
            yield
        finally:
            lock.truncate(0)
