"""The status store: status.json and a bounded history.json, each replaced atomically.

Both are plain JSON so that `picl status` from the operator's machine needs nothing on the
primary but `cat`. A crash at any moment leaves the previous file whole (write, fsync, rename).
They name nodes, revisions and errors: root and the adm group (who read the logs) may read
them, nobody else (0640 root:adm).
"""

from __future__ import annotations

import grp
import json
import logging
import os
import stat
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from picl.reconciler.paths import Paths
from picl.reconciler.status import HISTORY, Cycle, Status, cycle_from_json

log = logging.getLogger(__name__)


RECORD_MODE = 0o640


def record_group() -> int:
    """The group that may read the agent's records: adm (Debian's readers of logs), else root."""
    try:
        return grp.getgrnam("adm").gr_gid
    except KeyError:
        return 0


def replace_file(path: Path, text: str, mode: int = 0o644, group: int | None = None) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never half.

    The file has its `mode` (and `group`) before it takes the name: never readable by more.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            if group is not None:
                os.fchown(out.fileno(), -1, group)
            os.fchmod(out.fileno(), mode)
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        # A damaged file must not stop the agent: it starts afresh and says so.
        log.warning("%s: unreadable, starting afresh: %s", path, exc)
        return None


def _tighten(path: Path) -> None:
    """A record an older picl left readable by everyone is closed now, not at its next write."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) & ~RECORD_MODE:
        os.chmod(path, stat.S_IMODE(info.st_mode) & RECORD_MODE)


class Store:
    """The agent's status and history on disk."""

    def __init__(self, paths: Paths):
        self.paths = paths
        self.group = record_group()
        for path in (paths.status, paths.history):
            _tighten(path)

    def status(self) -> Status:
        data = _read_json(self.paths.status)
        return Status.from_json(data) if isinstance(data, dict) else Status()

    def history(self) -> list[Cycle]:
        data = _read_json(self.paths.history)
        if not isinstance(data, list):
            return []
        return [cycle_from_json(c) for c in data if isinstance(c, dict)]

    def save(self, status: Status) -> None:
        """Record the status; a finished cycle goes into the history too (once)."""
        replace_file(self.paths.status, json.dumps(status.to_json(), indent=2) + "\n",
                     RECORD_MODE, self.group)
        cycle = status.cycle
        if cycle is None or cycle.finished is None:
            return
        history = self.history()
        if history and history[-1].number == cycle.number and history[-1].started == cycle.started:
            return
        history = [*history, cycle][-HISTORY:]
        replace_file(self.paths.history,
                     json.dumps([asdict(c) for c in history], indent=1) + "\n", RECORD_MODE,
                     self.group)
