"""What wakes the agent: a push, a request in the control directory, a node coming back.

Each source puts a reason into one `Triggers`; the loop takes them all at once, so that two
triggers arriving together make one cycle, never two at a time. The interval, retries and the
first cycle at start-up are the loop's own timing, not sources.

- A push: inotify (watchdog) on the bare repository's refs: a cycle within a second of it.
- The control directory: `picl agent reconcile`, `suspend`, `resume`.
- A node coming back: each other node is pinged every few seconds (not connected to: sshd
  would log every look); one that answers again after being silent is awaited on SSH's port,
  then a cycle converges it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from picl.deploy.power import answers_ping, port_open

log = logging.getLogger(__name__)

SETTLE = 0.2  # seconds to gather the events of one push (a ref and its reflog, packed-refs)
PING_EVERY = 5.0  # seconds between looks at the other nodes
PORT_WAIT = 120.0  # seconds a node that answers ping again is given to open SSH's port


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


class NodeWatcher(threading.Thread):
    """Puts "NODE came back" when a silent node answers again (and its SSH port is open)."""

    def __init__(self, triggers: Triggers, stop: threading.Event,
                 alive: Callable[[str], bool] = answers_ping,
                 port_open: Callable[[str], bool] = port_open):
        super().__init__(name="node-watcher", daemon=True)
        self.triggers = triggers
        self.stop = stop
        self.alive = alive
        self.port_open = port_open
        self._nodes: dict[str, str] = {}  # name -> address
        self._silent: set[str] = set()
        self._lock = threading.Lock()

    def watch(self, nodes: Iterable[tuple[str, str]]) -> None:
        """The nodes to watch (name, address): the other nodes of the last accepted spec."""
        with self._lock:
            self._nodes = dict(nodes)
            self._silent &= set(self._nodes)

    def look(self) -> list[str]:
        """One look at every node; returns those that came back since the last look."""
        with self._lock:
            nodes = dict(self._nodes)
        back = []
        for name, address in nodes.items():
            if not self.alive(address):
                if name not in self._silent:
                    log.info("%s: silent (no answer to ping)", name)
                self._silent.add(name)
            elif name in self._silent and self._ssh_within(address, PORT_WAIT):
                self._silent.discard(name)
                back.append(name)
        return back

    def _ssh_within(self, address: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.stop.is_set():
            if self.port_open(address):
                return True
            if time.monotonic() > deadline:
                return False
            self.stop.wait(1.0)
        return False

    def run(self) -> None:
        while not self.stop.wait(PING_EVERY):
            for name in self.look():
                log.info("%s: came back", name)
                self.triggers.put(f"{name} came back")
