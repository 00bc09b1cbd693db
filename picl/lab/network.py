"""The lab's wiring: a network namespace per node and one for the lab's switch (a bridge).

Nothing here touches the host's own network namespace: the bridge, its address and every cable
(veth pair) live in namespaces the lab creates, so the host's routes are untouched and two labs
with the same addresses never meet.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal

from picl.lab import host, pios
from picl.lab.blueprint import (
    BRIDGE,
    NETNS,
    UPLINK_BRIDGE,
    UPLINK_INTERFACE,
    UPLINK_SUBNET,
    Blueprint,
    NodeBlueprint,
)

log = logging.getLogger(__name__)

# A VM node's namespace is the wire between its cable and its NIC: the cable's end and the tap
# qemu opens, joined by a bridge. No address in it: the address is the VM's own.
TAP = "tap0"
NODE_BRIDGE = "br0"


def exists(namespace: str) -> bool:
    """Whether the namespace is there: its file is a mount of it (not left from before a reboot)."""
    path = NETNS / namespace
    return path.exists() and any(
        target == str(path) and fstype == "nsfs" for _, target, fstype in host.mounts()
    )


def namespaces() -> list[str]:
    """Every network namespace `ip netns` knows of."""
    if not NETNS.is_dir():
        return []
    return sorted(p.name for p in NETNS.iterdir())


def inode(namespace: str) -> int | None:
    """The namespace's inode: what /proc/PID/ns/net of the processes inside it point at."""
    try:
        return os.stat(NETNS / namespace).st_ino
    except OSError:
        return None


def _link_exists(namespace: str, link: str) -> bool:
    return (
        host.run(["ip", "-n", namespace, "link", "show", "dev", link], check=False).returncode == 0
    )


def ensure_switch(lab: Blueprint) -> None:
    """The lab network: its namespace, the bridge, and the lab's own address on it."""
    ns = lab.namespace
    if not exists(ns):
        remove(ns)
        host.run(["ip", "netns", "add", ns])
    commands = []
    if not _link_exists(ns, BRIDGE):
        commands.append(f"link add {BRIDGE} type bridge")
        commands.append(f"addr add {lab.address}/{lab.prefixlen} dev {BRIDGE}")
    commands += ["link set lo up", f"link set {BRIDGE} up"]
    if lab.uplink and not _link_exists(ns, UPLINK_BRIDGE):
        router = UPLINK_SUBNET.network_address + 1
        commands += [f"link add {UPLINK_BRIDGE} type bridge",
                     f"addr add {router}/{UPLINK_SUBNET.prefixlen} dev {UPLINK_BRIDGE}",
                     f"link set {UPLINK_BRIDGE} up"]
    _batch(ns, commands)


def ensure_cable(lab: Blueprint, node: NodeBlueprint) -> None:
    """The node's namespace and cable: the spec's interface inside, the other end on the bridge.

    A node whose NetworkManager cannot run (emulated) gets its static address on its end here.
    """
    if not exists(node.namespace):
        remove(node.namespace)
        host.run(["ip", "netns", "add", node.namespace])
        _batch(node.namespace, ["link set lo up"])
    if lab.uplink:
        _ensure_uplink_cable(lab, node)
    _ensure_wired_cable(lab, node)
    if node.vm:
        _ensure_tap(lab, node)
    elif pios.networkmanager_cannot_run(node.release, node.arch):  # the cable brings the address
        _batch(node.namespace, [f"addr replace {node.address}/{lab.prefixlen} dev {lab.interface}",
                                f"link set {lab.interface} up"])


def _ensure_wired_cable(lab: Blueprint, node: NodeBlueprint) -> None:
    if _link_exists(lab.namespace, node.veth) and _link_exists(node.namespace, lab.interface):
        return
    if _link_exists(lab.namespace, node.veth):  # half a cable: its node end went with its namespace
        _batch(lab.namespace, [f"link del {node.veth}"])
    _batch(
        lab.namespace,
        [
            f"link add {node.veth} type veth peer name {lab.interface} netns {node.namespace}",
            f"link set {node.veth} master {BRIDGE}",
            f"link set {node.veth} up",
        ],
    )


def _ensure_tap(lab: Blueprint, node: NodeBlueprint) -> None:
    """The VM's tap (it outlives qemu: off, the NIC has no carrier), bridged to the cable."""
    ns = node.namespace
    commands = []
    if not _link_exists(ns, NODE_BRIDGE):
        commands.append(f"link add {NODE_BRIDGE} type bridge")
    if not _link_exists(ns, TAP):
        commands.append(f"tuntap add dev {TAP} mode tap")
    commands += [
        f"link set {lab.interface} master {NODE_BRIDGE}",
        f"link set {TAP} master {NODE_BRIDGE}",
        f"link set {NODE_BRIDGE} up",
        f"link set {lab.interface} up",
        f"link set {TAP} up",
    ]
    _batch(ns, commands)


def _ensure_uplink_cable(lab: Blueprint, node: NodeBlueprint) -> None:
    """The node's second cable, to the uplink bridge: an isolated port, as on a guest Wi-Fi."""
    if _link_exists(lab.namespace, node.uplink_veth):
        if _link_exists(node.namespace, UPLINK_INTERFACE):
            return
        _batch(lab.namespace, [f"link del {node.uplink_veth}"])
    _batch(lab.namespace, [
        f"link add {node.uplink_veth} type veth peer name {UPLINK_INTERFACE} "
        f"netns {node.namespace}",
        f"link set {node.uplink_veth} master {UPLINK_BRIDGE}",
        f"link set dev {node.uplink_veth} type bridge_slave isolated on",
        f"link set {node.uplink_veth} up",
    ])


def remove(namespace: str) -> None:
    """Delete a namespace (its veths go with it once no process holds it)."""
    path = NETNS / namespace
    if exists(namespace):
        # What still runs in it (shared SSH connections kept open for a minute) goes too.
        pids = host.run(["ip", "netns", "pids", namespace]).stdout.split()
        for pid in set(pids) - {str(os.getpid()), str(os.getppid())}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)
        host.run(["ip", "netns", "delete", namespace])
        log.info("removed network namespace %s", namespace)
    elif path.is_file():
        path.unlink()  # left from before a reboot: a file, no namespace behind it


def _batch(namespace: str, commands: list[str]) -> None:
    host.run(["ip", "-n", namespace, "-batch", "-"], input="\n".join(commands) + "\n")
