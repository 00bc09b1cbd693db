"""The agent as a command reaches it: on the primary itself, or over SSH from elsewhere.

`picl status`, `history`, `agent suspend|resume|reconcile` work the same from the operator's
machine and on the primary: they read the agent's status files and leave files in its control
directory, as shell text run here or on the primary as root.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from typing import Any

from picl.errors import PiclError
from picl.reconciler.paths import Paths
from picl.reconciler.status import Cycle, Status, cycle_from_json
from picl.spec import Node
from picl.transport.connection import Connection
from picl.transport.remote import as_root

TIMEOUT = 30.0  # seconds for one look at the agent


def ssh(connection: Connection, node: Node, script: str, what: str,
        data: bytes | None = None, timeout: float = TIMEOUT) -> str:
    """Run `script` as root on `node`, `data` on its stdin; its stdout, or a one-line error."""
    argv = connection.ssh_argv(str(node.address), as_root(script))
    try:
        proc = subprocess.run(argv, input=data or b"", capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PiclError(f"{node.name}: {what}: no answer within {timeout:.0f}s") from None
    if proc.returncode != 0:
        said = proc.stderr.decode(errors="replace").strip().splitlines()
        raise PiclError(f"{node.name}: {what} failed (exit {proc.returncode})"
                        + (f": {said[-1]}" if said else ""))
    return proc.stdout.decode(errors="replace")


def read_records(paths: Paths) -> str:
    """Shell printing status.json and history.json (`null` for one that is not there yet);
    one readable only by root and adm says so, and fails."""
    files = " ".join(shlex.quote(str(p)) for p in (paths.status, paths.history))
    return (f'for f in {files}; do if [ ! -e "$f" ]; then echo null; '
            'elif [ -r "$f" ]; then cat "$f"; else echo "$f: only root and the adm group may '
            'read it: run picl status with sudo" >&2; exit 1; fi; echo; done')


class AgentClient:
    """The agent's files, wherever they are; `where` names it in messages."""

    def __init__(self, paths: Paths, primary: Node | None = None,
                 connection: Connection | None = None):
        self.paths = paths
        self.primary = primary  # None: on the primary itself
        self.connection = connection or Connection.from_environ()

    @classmethod
    def here(cls, paths: Paths) -> bool:
        """Whether this machine is the primary the agent runs on."""
        return paths.status.is_file() or paths.unit.is_file()

    @property
    def where(self) -> str:
        return self.primary.name if self.primary else "this machine"

    def run(self, script: str, what: str) -> str:
        if self.primary is None:
            proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                                  timeout=TIMEOUT, stdin=subprocess.DEVNULL)
            if proc.returncode != 0:
                raise PiclError(f"{what} failed: {proc.stderr.strip() or proc.returncode}")
            return proc.stdout
        return ssh(self.connection, self.primary, script, what)

    def _read(self) -> tuple[Any, Any]:
        text = self.run(read_records(self.paths), "reading the agent's status")
        decoder = json.JSONDecoder()
        try:
            first, end = decoder.raw_decode(text.lstrip())
            second, _ = decoder.raw_decode(text.lstrip()[end:].lstrip())
        except ValueError:
            raise PiclError(f"{self.where}: the agent's status is not readable JSON") from None
        return first, second

    def status(self) -> tuple[Status, list[Cycle]]:
        """The agent's status and history; an error when no agent was ever installed there."""
        status, history = self._read()
        if not isinstance(status, dict):
            raise PiclError(f"{self.where}: no agent status ({self.paths.status}); "
                            "install it with `picl agent install`")
        cycles = [cycle_from_json(c) for c in history if isinstance(c, dict)] \
            if isinstance(history, list) else []
        return Status.from_json(status), cycles
