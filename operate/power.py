"""Reboot and shutdown, in the order that keeps SD cards and NFS mounts whole.

The workers go first and the primary last: the workers mount the primary's NFS share, and a
client whose server is already gone hangs its own shutdown on the unmount. A shutdown waits
until each worker has really halted before it powers the primary off; a reboot waits until
each node is back: a new boot id, read over SSH.

Every wait is bounded; what runs out of time is reported as a failure, never waited for.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass

from picl.errors import PiclError
from picl.spec import Cluster, Node
from picl.transport.connection import Connection
from picl.transport.remote import Reply, as_root, ask

BOOT_TIMEOUT = 300.0  # a Pi boots in about a minute; a slow SD card or fsck can take more
HALT_TIMEOUT = 180.0  # systemd gives a stuck service 90s before it kills it, then halts
PROBE_TIMEOUT = 10.0  # one look at a node, connection included (see probe_timeout)
POLL = 1.0  # seconds between looks
BOOT_ID = "cat /proc/sys/kernel/random/boot_id"

Halted = Callable[[Node], bool]


@dataclass(frozen=True)
class PowerEvent:
    """One step of a reboot or shutdown, for one node."""

    node: str
    what: str  # rebooting, powering off, down, back, off, already off, failed, left running
    at: float  # wall clock (time.time())
    seconds: float = 0.0  # since the node was asked, where it applies
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.what in ("failed", "left running")


def _event(node: str, what: str, since: float | None = None, detail: str = "") -> PowerEvent:
    seconds = time.monotonic() - since if since is not None else 0.0
    return PowerEvent(node, what, time.time(), seconds, detail)


def split(cluster: Cluster, nodes: list[Node]) -> tuple[list[Node], list[Node]]:
    """(the workers, the primary if it is among the nodes): the order they go down in."""
    workers = [n for n in nodes if n.name != cluster.primary.name]
    return workers, [n for n in nodes if n.name == cluster.primary.name]


def port_open(address: str, port: int = 22, timeout: float = 2.0) -> bool:
    """Whether something accepts TCP connections there (sshd, by default) right now."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def answers_ping(address: str) -> bool:
    """Whether the address answers one ping within a second."""
    try:
        proc = subprocess.run(["ping", "-c1", "-W1", "-q", address], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def silent(node: Node) -> bool:
    """A board has halted when it answers neither SSH's port nor ping (its NIC is off).

    sshd stops early in a shutdown, long before the SD card is unmounted: the port alone says
    nothing about the card.
    """
    address = str(node.address)
    return not port_open(address) and not answers_ping(address)


def probe_timeout(connection: Connection) -> float:
    """One look at a node, however long its connection may take (PICL_CONNECT_TIMEOUT)."""
    return connection.allowing(PROBE_TIMEOUT)


def boot_timeout(connection: Connection) -> float:
    """How long a rebooted node may take to answer SSH again."""
    return connection.allowing(BOOT_TIMEOUT)


def boot_ids(
    nodes: list[Node], connection: Connection, timeout: float | None = None
) -> dict[str, Reply]:
    """Each node's answer to "which boot is this?": the boot id on stdout when it answers."""
    commands = {n.name: (str(n.address), BOOT_ID) for n in nodes}
    with closing(ask(commands, connection, timeout or probe_timeout(connection))) as replies:
        return {r.node: r for r in replies}


def _boot(reply: Reply | None) -> str | None:
    """The boot id a node answered, if it answered one."""
    if reply is None or reply.status != 0:
        return None
    return reply.stdout.strip() or None


def is_this_machine(node: Node) -> bool:
    """Whether picl runs on this node (its address is one of this machine's)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((str(node.address), 0))
        except OSError:
            return False
    return True


def _ask(
    verb: str, what: str, nodes: list[Node], connection: Connection, asked: dict[str, float]
) -> Iterator[PowerEvent]:
    """Ask each node to reboot or power off: when, in `asked`; a node that refused says why."""
    # Powering off needs root: logged in as someone else, sudo without a password or nothing.
    commands = {n.name: (str(n.address), as_root(f"systemctl {verb}")) for n in nodes}
    with closing(ask(commands, connection, probe_timeout(connection))) as replies:
        for reply in replies:
            # 255: ssh lost the connection as the node went down, which is what was asked.
            if reply.status is None or reply.status in (0, 255):
                asked[reply.node] = time.monotonic()
                yield _event(reply.node, what)
            else:
                last = reply.stderr.strip().splitlines()[-1:] or [f"exit {reply.status}"]
                yield _event(reply.node, "failed", detail=f"refused: {last[0]}")


def _until(
    nodes: list[Node], done: Callable[[Node], bool], timeout: float
) -> Iterator[tuple[Node, bool]]:
    """Look at the nodes every POLL seconds; yield (node, True) as each is done, and
    (node, False) for those still not done at the deadline."""
    pending = list(nodes)
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(nodes)))) as pool:
        while pending:
            for node, finished in zip(list(pending), list(pool.map(done, pending)), strict=True):
                if finished:
                    pending.remove(node)
                    yield node, True
            if pending and time.monotonic() >= deadline:
                for node in pending:
                    yield node, False
                return
            if pending:
                time.sleep(POLL)


def _left_running(nodes: list[Node], why: str) -> Iterator[PowerEvent]:
    for node in nodes:
        yield _event(node.name, "left running", detail=why)


def reboot(
    cluster: Cluster, nodes: list[Node], connection: Connection, timeout: float | None = None
) -> Generator[PowerEvent, None, None]:
    """Reboot the nodes: the workers, then, once they are all back, the primary.

    A node is back when it answers SSH on a new boot id. Waiting for the workers to be back,
    not only down, means none is still unmounting its share when the primary goes. A node
    whose SSH is slow to answer (PICL_CONNECT_TIMEOUT) is as slow to boot: the wait allows it.
    """
    timeout = boot_timeout(connection) if timeout is None else timeout
    before = boot_ids(nodes, connection)
    reachable = []
    for node in nodes:
        reply = before[node.name]
        if _boot(reply):
            reachable.append(node)
        else:
            why = reply.error.removeprefix("ssh: ") or f"exit {reply.status}"
            yield _event(node.name, "failed", detail=f"unreachable, not rebooted: {why}")
    here = [n for n in reachable if is_this_machine(n)]
    workers, primary = split(cluster, [n for n in reachable if n not in here])
    boots = {n: _boot(r) for n, r in before.items()}
    late = yield from _reboot_phase(workers, boots, connection, timeout)
    if late:
        yield from _left_running(primary, f"{', '.join(late)} not back: the primary goes last")
        yield from _left_running(here, f"{', '.join(late)} not back")
        return
    yield from _reboot_phase(primary, boots, connection, timeout)
    for node in here:  # last: picl ends with it
        yield _event(node.name, "rebooting", detail="this machine: picl ends with it")
        _ask_only("reboot", [node], connection)


def _reboot_phase(
    nodes: list[Node], before: dict[str, str | None], connection: Connection, timeout: float
) -> Generator[PowerEvent, None, list[str]]:
    """Reboot these nodes together and wait until each is back; returns those that are not."""
    asked: dict[str, float] = {}
    booted: dict[str, str] = {}

    def back(node: Node) -> bool:
        now = _boot(boot_ids([node], connection)[node.name])
        if now and now != before[node.name]:
            booted[node.name] = now
        return node.name in booted

    yield from _ask("reboot", "rebooting", nodes, connection, asked)
    late = []  # a node that refused is not going down: nothing waits for it
    for node, up in _until([n for n in nodes if n.name in asked], back, timeout):
        if up:
            yield _event(node.name, "back", asked[node.name], f"boot {booted[node.name][:8]}")
        else:
            late.append(node.name)
            yield _event(node.name, "failed", asked[node.name],
                         f"not back within {timeout:.0f}s (no SSH on a new boot)")
    return late


def shut_down(
    cluster: Cluster, connection: Connection, halted: Halted = silent,
    timeout: float = HALT_TIMEOUT,
) -> Generator[PowerEvent, None, None]:
    """Power every node off: the workers, and once each has halted, the primary.

    `halted` tells that a node is really off (on boards: `silent`). A worker that cannot be
    powered off, or does not halt in time, leaves the primary running, and says so.
    """
    here = [n for n in cluster.nodes if is_this_machine(n)]
    if here and here[0].name != cluster.primary.name:
        raise PiclError(f"shutdown: picl runs on {here[0].name}, a worker, which would power "
                        f"itself off before the primary: run it on the primary or elsewhere")
    answers = boot_ids(list(cluster.nodes), connection)
    reachable, up = [], []
    for node in cluster.nodes:
        if _boot(answers[node.name]):
            reachable.append(node)
        elif halted(node):
            yield _event(node.name, "already off")
        else:
            up.append(node.name)
            why = answers[node.name].error.removeprefix("ssh: ")
            yield _event(node.name, "failed",
                         detail=f"does not answer SSH ({why}) but has not halted")
    asked: dict[str, float] = {}
    workers, primary = split(cluster, reachable)
    for event in _ask("poweroff", "powering off", workers, connection, asked):
        if event.failed:
            up.append(event.node)
        yield event
    for node, off in _until([w for w in workers if w.name in asked], halted, timeout):
        yield _event(node.name, "off" if off else "failed", asked[node.name],
                     "" if off else f"still up {timeout:.0f}s after it was asked")
        if not off:
            up.append(node.name)
    stuck = [name for name in up if name != cluster.primary.name]
    if stuck:
        yield from _left_running(primary, f"{', '.join(stuck)} still up: the primary goes last")
        return
    if primary and is_this_machine(primary[0]):
        yield _event(primary[0].name, "powering off", detail="this machine: picl ends with it")
        _ask_only("poweroff", primary, connection)
        return
    yield from _ask("poweroff", "powering off", primary, connection, asked)
    for node, off in _until([p for p in primary if p.name in asked], halted, timeout):
        yield _event(node.name, "off" if off else "failed", asked[node.name],
                     "" if off else f"still up {timeout:.0f}s after it was asked")


def _ask_only(verb: str, nodes: list[Node], connection: Connection) -> None:
    """Ask without waiting for the answer: the node is the one picl runs on."""
    for _ in _ask(verb, "", nodes, connection, {}):
        pass
