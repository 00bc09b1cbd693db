"""What each node's LED strip shows, from the agent's status, written to the nodes over SSH.

The agent writes one record per node (`picl.reconciler.leds.record`) after every cycle and
whenever its state changes: the node's own state, and on the primary one pixel per node. The
LED service on each node only displays it. Each record expires: an agent that stops writing
shows as `unreachable` rather than as a stale green.
"""

from __future__ import annotations

import logging
import shlex
import threading
from collections.abc import Callable, Iterator
from contextlib import closing

from picl.reconciler.leds import service
from picl.reconciler.leds.record import STATE_FILE, Record
from picl.reconciler.status import Status
from picl.spec import Cluster
from picl.transport.connection import Connection
from picl.transport.remote import ask

log = logging.getLogger(__name__)

WRITE_TIMEOUT = 15.0  # seconds for one node to take its record
BOOT_ID = "/proc/sys/kernel/random/boot_id"


def service_files(cluster: Cluster, backend: str) -> dict[str, str]:
    """The LED service's files (path -> text) that apply installs on nodes with a strip."""
    files = {f"{service.NODE_HOME}/{path}": data.decode()
             for path, data in service.shipped().items()}
    files[f"/etc/systemd/system/{service.UNIT_NAME}"] = service.unit(
        cluster.leds.mode, cluster.leds.brightness, backend)
    return files


def node_states(status: Status, names: list[str]) -> list[str]:
    """Each node's LED state: a paused or stalled agent shows on every node, as that."""
    if status.suspended is not None:
        return ["suspended"] * len(names)
    if status.condition("Stalled").status == "True":
        return ["stalled"] * len(names)
    known = {n.node: n.state for n in status.nodes}
    return [known.get(name, "unknown") for name in names]


def records(status: Status, names: list[str], primary: str, expires: float) -> dict[str, Record]:
    """The record for each node; the primary's also carries every node's state, in order."""
    states = node_states(status, names)
    return {
        name: Record(state, tuple(states) if name == primary else (), expires)
        for name, state in zip(names, states, strict=True)
    }


def write_command(record: Record, path: str = STATE_FILE) -> str:
    """Shell text that replaces the node's record atomically and prints the node's boot id."""
    directory = path.rsplit("/", 1)[0]
    temporary = f"{directory}/.leds.json.new"
    return (f"umask 022 && mkdir -p {shlex.quote(directory)} && "
            f"printf '%s\\n' {shlex.quote(record.to_json())} > {shlex.quote(temporary)} && "
            f"mv -f {shlex.quote(temporary)} {shlex.quote(path)}; cat {BOOT_ID}")


def write(cluster: Cluster, chosen: dict[str, Record], connection: Connection) -> dict[str, str]:
    """Write each node's record, all at once; returns the boot id of each node that took it."""
    commands = {name: (str(cluster.node(name).address), write_command(record))
                for name, record in chosen.items()}
    taken = {}
    # Over the nodes' shared connections: a write is a session, not an SSH handshake.
    with closing(ask(commands, connection, WRITE_TIMEOUT, shared=True)) as replies:
        for reply in replies:
            if reply.ok and reply.stdout.strip():
                taken[reply.node] = reply.stdout.strip()
            else:
                log.debug("%s: LED record not written: %s", reply.node,
                          reply.error or reply.stderr.strip() or f"exit {reply.status}")
    return taken


def rebooted(before: dict[str, str], after: dict[str, str]) -> Iterator[str]:
    """Nodes whose boot id changed between two looks."""
    for name, boot in after.items():
        if before.get(name) and boot != before[name]:
            yield name


class Painter(threading.Thread):
    """Writes the records in the background, the newest only: a cycle never waits on a strip.

    Records handed over while a write is under way replace each other; the last one is written
    next, so a strip never goes back to an older state.
    """

    def __init__(self, connection: Connection, seen: Callable[[dict[str, str]], None]):
        super().__init__(name="led-painter", daemon=True)
        self.connection = connection
        self.seen = seen  # called with the boot ids of the nodes written to
        self._next: tuple[Cluster, dict[str, Record]] | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()

    def paint(self, cluster: Cluster, chosen: dict[str, Record]) -> None:
        with self._lock:
            self._next = (cluster, chosen)
        self._wake.set()

    def run(self) -> None:
        while self._wake.wait():
            self._wake.clear()
            with self._lock:
                work, self._next = self._next, None
            if work is None:
                continue
            try:
                self.seen(write(*work, self.connection))
            except Exception:  # noqa: BLE001 - the LEDs must never stop the agent
                log.exception("writing the LED records failed")
