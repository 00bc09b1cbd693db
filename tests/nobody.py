"""Another user on this machine, for what a local user can and cannot do: `nobody`.

pytest's temporary directories are root's alone (0700): what `nobody` must reach goes in a
directory of `open_directory` instead.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NOBODY = 65534  # nobody:nogroup on Debian


def as_nobody(*argv: str, env: dict[str, str] | None = None,
              read_anything: bool = False) -> subprocess.CompletedProcess[str]:
    """`argv` run as nobody. `read_anything` lets it read (never write) root's files, for an
    interpreter that lives under /root; it stays a user other than root."""
    caps = ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"] \
        if read_anything else []
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                           *caps, "--", *argv], capture_output=True, text=True, timeout=120,
                          env=env, stdin=subprocess.DEVNULL)


@contextmanager
def open_directory(mode: int) -> Iterator[Path]:
    """A fresh directory under /tmp with `mode` (0755: anyone may look in; 01777: like
    /run/lock, anyone may make things in it), removed after."""
    directory = Path(tempfile.mkdtemp(prefix="picl-test-"))
    directory.chmod(mode)
    try:
        yield directory
    finally:
        shutil.rmtree(directory)
