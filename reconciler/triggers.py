"""What wakes the agent: a push, a request in the control directory, a node coming back.

Each source puts a reason into one `Triggers`; the loop takes them all at once, so that two
triggers arriving together make one cycle, never two at a time. The interval, retries and the
first cycle at start-up are the loop's own timing, not sources.

- A push: inotify (watchdog) on the bare repository's refs: a cycle within a second of it.
- The control directory: `picl agent reconcile`, `suspend`, `resume`.
- A node coming back: the agent keeps one idle SSH session open to each other node (it
  starts by reading the node's boot id). A node that reboots or loses power ends its session;
  the next session that opens finds a new boot id, or follows a time without one: "came back",
  and a cycle converges it. Idle sessions cost a keepalive every few seconds; looking at a
  node afresh every few seconds would cost an SSH handshake each, and a line in its log.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from picl.transport.connection import Connection

log = logging.getLogger(__name__)

SETTLE = 0.2  # seconds to gather the events of one push (a ref and its reflog, packed-refs)
RECONNECT = 5.0  # seconds between attempts to open a session to a node out of reach
# Prints the boot id, then holds the session until the agent's end closes it.
FOLLOW = "cat /proc/sys/kernel/random/boot_id && exec cat >/dev/null"


class Triggers:
    """Reasons for a cycle, gathered from every source until the loop takes them."""

    def __init__(self) -> None:
        self._reasons: set[str] = set()
        self._changed = threading.Condition()

    def put(self, reason: str) -> None:
        with self._changed:
            self._reasons.add(reason)
            self._changed.notify_all()

    def take(self, timeout: float | None) -> set[str]:
        """Wait up to `timeout` for a reason; return every reason gathered (maybe none)."""
        with self._changed:
            if not self._reasons:
                self._changed.wait(timeout)
            if self._reasons:
                # A burst of events (one push touches several files) becomes one cycle.
                settled = time.monotonic() + SETTLE
                while (left := settled - time.monotonic()) > 0:
                    self._changed.wait(left)
            reasons, self._reasons = self._reasons, set()
            return reasons


def is_ref_change(path: str, repository: Path) -> bool:
    """Whether an event's path is a branch moving in the bare repository."""
    if path.endswith(".lock"):
        return False
    relative = Path(path).relative_to(repository) if path.startswith(str(repository)) else None
    if relative is None:
        return False
    return relative.parts[:2] == ("refs", "heads") or relative.parts == ("packed-refs",)


class _Handler(FileSystemEventHandler):
    def __init__(self, wanted: Callable[[str, str], str | None], triggers: Triggers):
        self.wanted = wanted
        self.triggers = triggers

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write", "attrib"):
            return  # reading, or a chmod: nothing moved
        paths = [(str(event.src_path), event.event_type)]
        if getattr(event, "dest_path", ""):
            paths.append((str(event.dest_path), "created"))  # moved into place
        for path, kind in paths:
            reason = self.wanted(path, kind)
            if reason:
                self.triggers.put(reason)


def watch_files(repository: Path, control: Path, triggers: Triggers) -> BaseObserver:
    """Start watching the repository's refs and the control directory (inotify)."""
    observer = Observer()
    control.mkdir(parents=True, exist_ok=True)

    def push(path: str, kind: str) -> str | None:
        return "push" if is_ref_change(path, repository) else None

    def request(path: str, kind: str) -> str | None:
        name = Path(path).name
        if name == "reconcile" and kind != "deleted":  # the agent deletes it as it starts
            return "requested"
        return "control" if name == "suspended" else None

    refs = repository / "refs" / "heads"
    if refs.is_dir():
        observer.schedule(_Handler(push, triggers), str(refs), recursive=True)
        observer.schedule(_Handler(push, triggers), str(repository), recursive=False)
    else:
        log.warning("%s: no repository to watch; pushes are seen at the next interval",
                    repository)
    observer.schedule(_Handler(request, triggers), str(control), recursive=False)
    observer.daemon = True
    observer.start()
    return observer




def came_back(known: str | None, boot: str, lost: bool) -> bool:
    """Whether a session that opened on boot id `boot` means the node came back.

    `known` is the boot id of the node's last session (None: never seen), `lost` whether a
    time without a session came before this one. A new boot is a node that came back; so is a
    node seen for the first time after being out of reach. A blip on the wire is neither.
    """
    if known is None:
        return lost
    return boot != known


class Session:
    """One idle SSH session to a node, held open to notice the node going away."""

    def __init__(self, connection: Connection, address: str):
        # A node that loses power sends nothing: ssh's keepalives notice within 15 s. Over the
        # node's shared connection: it stays open while followed, so no cycle opens another.
        self.argv = connection.ssh_argv(address, FOLLOW, shared=True)
        self.proc: subprocess.Popen[str] | None = None

    def open(self) -> str | None:
        """Open it; the node's boot id, or None when the node cannot be reached."""
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line:
            self.proc.wait()
            return None
        return line

    def wait(self) -> None:
        """Until the session ends: the node went away, or `close` was called."""
        if self.proc is not None:
            self.proc.wait()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()


class Follower(threading.Thread):
    """Follows one node through its sessions; puts "NODE came back" when it does."""

    def __init__(self, name: str, session: Session, triggers: Triggers):
        super().__init__(name=f"follow-{name}", daemon=True)
        self.node = name
        self.session = session
        self.triggers = triggers
        self.stop = threading.Event()

    def run(self) -> None:
        known: str | None = None
        lost = False
        while not self.stop.is_set():
            boot = self.session.open()
            if self.stop.is_set():
                break
            if boot is None:
                lost = True
                self.stop.wait(RECONNECT)
                continue
            if came_back(known, boot, lost):
                log.info("%s: came back%s", self.node, " (rebooted)" if known else "")
                self.triggers.put(f"{self.node} came back")
            known, lost = boot, False
            self.session.wait()
            if not self.stop.is_set():
                log.info("%s: gone (its session ended)", self.node)
                lost = True
                self.stop.wait(1.0)  # a node shutting down refuses at once: do not spin

    def close(self) -> None:
        self.stop.set()
        self.session.close()


class NodeWatcher:
    """One follower per node to watch: the other nodes of the last accepted spec."""

    def __init__(self, triggers: Triggers, connection: Connection,
                 session: Callable[[str], Session] | None = None):
        self.triggers = triggers
        self.session = session or (lambda address: Session(connection, address))
        self.followers: dict[tuple[str, str], Follower] = {}

    def watch(self, nodes: Iterable[tuple[str, str]]) -> None:
        """Follow these (name, address) nodes, and no others."""
        wanted = set(nodes)
        for key in set(self.followers) - wanted:
            self.followers.pop(key).close()
        for name, address in wanted - set(self.followers):
            follower = Follower(name, self.session(address), self.triggers)
            self.followers[(name, address)] = follower
            follower.start()

    def close(self) -> None:
        self.watch([])
