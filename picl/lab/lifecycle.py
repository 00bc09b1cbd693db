"""A lab's life on this machine: built and booted (`up`), nodes powered off and on, removed.

One command at a time per lab (a lock); what a crashed run left behind is found and removed.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from picl.errors import PiclError
from picl.lab import host, imager, mirror, network, node, pios, ssh, vm, vmimage
from picl.lab.access import lab_name
from picl.lab.blueprint import (
    LOCKS,
    STATE,
    Blueprint,
    Flash,
    NodeBlueprint,
    check_name,
    design,
    lab_names,
    readable_labs,
)
from picl.lab.cards import Cards
from picl.lab.state import LabStatus, find, status
from picl.lab.supervisor import CGROUP_TOP, unplug

if TYPE_CHECKING:
    from picl.spec import Cluster

log = logging.getLogger(__name__)

# How long a node may take to shut down through its own init before its power is cut.
STOP_TIMEOUT = 30.0


def _design(
    cluster: Cluster, name: str, cards: Cards, built: Blueprint | None, warn: host.Warn,
    uplink: bool = False,
    spec: Path | None = None,
) -> Blueprint:
    """The lab to build, its images built (or found in the cache) first."""
    chosen = cards.choose([n.name for n in cluster.nodes], built)
    for arch in sorted({arch for _, arch in chosen.values()} - {pios.native_arch()}):
        host.ensure_emulation(arch, warn)
    machines = cards.machines(list(chosen), built)
    if machines and uplink:
        raise PiclError("VM nodes have no uplink (their one NIC is the wired network)")
    images = vmimage.ensure_with_images(
        chosen.values(), {chosen[n] for n in machines}, mirror.configured(), warn
    )
    flashed = {n: Flash(*chosen[n], images[chosen[n]], n in machines) for n in chosen}
    return design(
        name,
        cluster.cluster.name,
        cluster.network.subnet,
        cluster.network.interface,
        list(cluster.nodes),
        flashed,
        imager.first_user(list(cluster.users)),
        uplink,
        spec=str(spec.resolve()) if spec else "",
        primary=cluster.cluster.primary,
    )


def up(
    cluster: Cluster,
    name: str | None = None,
    warn: host.Warn = log.warning,
    timeout: float | None = None,
    cards: Cards | None = None,
    uplink: bool = False,
    spec: Path | None = None,
) -> LabStatus:
    """Bring the lab of this spec up, or mend it: returns once every node answers SSH.

    Idempotent: what exists is kept (a node's disk, its keys, a running node), what is missing
    is made, nodes no longer in the spec are removed. A node asked for with another release or
    architecture than it has is flashed again: its disk starts anew. `uplink`: the nodes get a
    second, non-cluster interface, like a Wi-Fi with client isolation (see lab.blueprint).
    `spec`: the file the spec was read from.
    """
    host.preflight()
    name = lab_name(cluster, name)
    with _locked(name):
        built = Blueprint.load(name)
        lab = _design(cluster, name, cards or Cards(), built, warn, uplink, spec)
        if built:
            _check_same_network(built, lab)
            lab = replace(lab, first_user=built.first_user or lab.first_user)
            keep = {n.name for n in lab.nodes}
            reflash = [
                n for n in lab.nodes if n.name in {b.name for b in built.nodes}
                and built.node(n.name).flash != n.flash
            ]  # fmt: skip
            for n in reflash:
                was = built.node(n.name)
                warn(
                    f"node {n.name}: flashing its card again ({was.release} {was.arch} -> "
                    f"{n.release} {n.arch}); its disk starts anew"
                )
            gone = [n for n in built.nodes if n.name not in keep]
            gone += [built.node(n.name) for n in reflash]
            if gone:
                _teardown_nodes(built, gone)
        lab.save()
        host.ensure_nspawn_runtime()
        host.ensure_inotify(_nodes_on_host(lab), warn)
        public_key = ssh.ensure_key(lab)
        network.ensure_switch(lab)
        mirror.start_proxy(lab, mirror.configured())
        found = node.processes(name)
        for n in lab.nodes:
            if node.is_powered(n, found) and not _wired(n, found):
                log.info("node %s lost its network namespace: restarting it", n.name)
                _cut_power(lab, n, found)
            network.ensure_cable(lab, n)
            if n.vm:
                _provision_vm(lab, n, public_key, node.is_powered(n, found))
            else:
                node.mount_disk(n)
                node.provision(lab, n, public_key)
        ssh.write_client_files(lab)
        found = node.processes(name)
        for n in lab.nodes:
            if not node.is_powered(n, found):
                node.power_on(lab, n)
        _wait_answering(lab, list(lab.nodes), timeout)
    return status(name, check_ssh=False) or _never(name)


def down(name: str) -> bool:
    """Stop lab `name` through its nodes' own init and remove all of it; False if there was none."""
    host.preflight(())
    check_name(name)
    with _locked(name):
        lab = Blueprint.load(name)
        found = node.processes(name)
        mounted = _mounts_under(STATE / name)
        if lab is None and not found and not mounted and not (STATE / name).exists():
            (LOCKS / f"{name}.lock").unlink(missing_ok=True)
            return False
        mirror.stop_proxy(name)
        if lab:
            _teardown_nodes(lab, list(lab.nodes))
            network.remove(lab.namespace)
        else:  # state without a blueprint: a crashed first `up`
            _stop(found, name)
            node.unmount_disks(STATE / name)
            for namespace in _namespaces_of_unknown(name):
                network.remove(namespace)
        _remove_tree(STATE / name)
        shutil.rmtree(ssh.control_dir(name), ignore_errors=True)  # its processes are gone
        node.remove_cgroups(f"{CGROUP_TOP}/{name}")
    (LOCKS / f"{name}.lock").unlink(missing_ok=True)
    if not lab_names():
        host.release_nspawn_runtime()
    return True


def down_all() -> list[str]:
    """Remove every picl lab on this machine, including what crashed runs left; their names."""
    host.preflight(())
    removed = [name for name in labs_on_host() if down(name)]
    mirror.stop_proxy()  # of labs whose state is gone
    # Namespaces of labs whose state is gone: nothing of theirs runs any more (see above).
    for namespace in network.namespaces():
        if namespace.startswith("picl-"):
            network.remove(namespace)
    propagate = host.NSPAWN_RUN / "propagate"
    if propagate.is_dir():
        for entry in propagate.glob("picl-*"):
            node.forget_runtime(entry.name)
    node.remove_cgroups(CGROUP_TOP)
    host.release_nspawn_runtime()
    return removed


def labs_on_host() -> list[str]:
    """Every lab with anything on this machine: state, processes or mounts."""
    names = set(lab_names())
    names |= {p.lab for p in node.processes()}
    names |= set(mirror.proxies())
    names |= {Path(t).relative_to(STATE).parts[0] for t in _mounts_under(STATE) if Path(t) != STATE}
    return sorted(names)


def kill(name: str, node_name: str) -> bool:
    """Cut a node's power (no shutdown); its disk stays as it is. False if it was already off."""
    host.preflight(())
    with _locked(name):
        lab = find(name)
        target = lab.node(node_name)
        found = node.processes(name)
        if not node.is_powered(target, found):
            return False
        _cut_power(lab, target, found)
    return True


def start(name: str, node_name: str, timeout: float | None = None) -> bool:
    """Boot a node that is off, with its disk as it was; returns once it answers SSH.

    False if it was already on (then only waits for it to answer).
    """
    host.preflight()
    with _locked(name):
        lab = find(name)
        target = lab.node(node_name)
        found = node.processes(name)
        started = not node.is_powered(target, found)
        if started:
            if target.arch != pios.native_arch():
                host.ensure_emulation(target.arch)  # gone when this machine rebooted
            network.ensure_cable(lab, target)
            if target.vm:
                vm.ensure_disk(target)
            else:
                node.mount_disk(target)
            node.power_on(lab, target)
        _wait_answering(lab, [target], timeout)
    return started


# -- internals ---------------------------------------------------------------------------------


@contextmanager
def _locked(name: str) -> Iterator[None]:
    """One command at a time per lab (two `up`s racing would boot a node twice)."""
    LOCKS.mkdir(parents=True, exist_ok=True)
    with open(LOCKS / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _never(name: str) -> NoReturn:
    raise PiclError(f"lab {name}: its state vanished while it came up")


# How much longer an emulated node may take to answer. Measured on 2 cores at load 8-12: a
# native bookworm node answered 7-8 s after `lab up` began, an arm64 one 23-46 s.
EMULATED_WAIT = 60


def answer_limit(arches: list[str]) -> float:
    """How long nodes of these architectures, booted together, may take to answer SSH."""
    emulated = sum(1 for arch in arches if arch != pios.native_arch())
    return 60 + 3 * len(arches) + EMULATED_WAIT * emulated


def _wait_answering(lab: Blueprint, nodes: list[NodeBlueprint], timeout: float | None) -> None:
    limit = timeout if timeout is not None else (
        answer_limit([n.arch for n in nodes]) + vm.boot_allowance(nodes)
    )
    silent = ssh.wait_answering(lab, nodes, limit)
    if silent:
        consoles = ", ".join(str(lab.node(s).dir / "console.log") for s in silent)
        raise PiclError(
            f"lab {lab.name}: {', '.join(silent)} did not answer SSH within {limit:.0f}s "
            f"(see {consoles})"
        )


def _provision_vm(lab: Blueprint, n: NodeBlueprint, public_key: str, powered: bool) -> None:
    """A VM node's card, written while it is off (a running VM's disk is its alone)."""
    vm.ensure_disk(n)
    if powered:
        return
    with vm.opened(n) as root:
        node.provision(lab, n, public_key)
        vm.name_interface(lab, n)
        vm.allow_slow_start(n)
        vm.keep_host_key(n, root / f"{node.HOST_KEY}.pub")


def _check_same_network(built: Blueprint, wanted: Blueprint) -> None:
    """A running lab cannot be rewired: its nodes' addresses are on their disks."""
    was = {n.name: n.address for n in built.nodes}
    moved = [n.name for n in wanted.nodes if n.name in was and was[n.name] != n.address]

    def wiring(lab: Blueprint) -> tuple[str, str, str]:
        return lab.subnet, lab.interface, lab.address

    if wiring(built) != wiring(wanted) or moved:
        what = f"nodes {', '.join(moved)} moved" if moved else "the network changed"
        raise PiclError(
            f"lab {built.name} was built for another network ({what}): "
            f"`picl lab down` and `picl lab up` to build it again"
        )


def _nodes_on_host(lab: Blueprint) -> int:
    """Nodes of every lab on the host once this one is up (for the inotify limit)."""
    others = sum(len(other.nodes) for other in readable_labs() if other.name != lab.name)
    return others + len(lab.nodes)


def _wired(target: NodeBlueprint, found: list[node.Process]) -> bool:
    """Whether the running node is in the namespace its cable is in (not one deleted since)."""
    expected = network.inode(target.namespace)
    for p in found:
        if p.init and p.node == target.name:
            try:
                return os.stat(f"/proc/{p.pid}/ns/net").st_ino == expected
            except OSError:
                return True  # it just ended
    return True


def _cut_power(lab: Blueprint, target: NodeBlueprint, found: list[node.Process]) -> None:
    mine = [p for p in found if p.node == target.name]
    node.cut_power(mine)
    left = node.wait_gone(target.lab, {target.name}, timeout=10)
    if left:
        raise PiclError(
            f"node {target.name}: processes {', '.join(str(p.pid) for p in left)} survived SIGKILL"
        )
    node.forget_runtime(target.machine)
    node.remove_cgroups(node.cgroup(target))
    if network.exists(target.namespace):
        # its supervisor died before it could
        unplug(target.namespace, network.TAP if target.vm else lab.interface)


def _stop(found: list[node.Process], name: str, nodes: set[str] | None = None) -> None:
    """Shut nodes down through their init; cut the power of what is still on after a while."""
    node.shut_down(found)
    left = node.wait_gone(name, nodes, timeout=STOP_TIMEOUT)
    if left:
        log.warning("cutting the power of %s: no clean shutdown", sorted({p.node for p in left}))
        node.cut_power(left)
        left = node.wait_gone(name, nodes, timeout=10)
        if left:
            raise PiclError(
                f"lab {name}: processes {', '.join(str(p.pid) for p in left)} survived SIGKILL"
            )


def _teardown_nodes(lab: Blueprint, nodes: list[NodeBlueprint]) -> None:
    names = {n.name for n in nodes}
    found = [p for p in node.processes(lab.name) if p.node in names]
    _stop(found, lab.name, names)
    for n in nodes:
        node.forget_runtime(n.machine)
        node.remove_cgroups(node.cgroup(n))
        node.unmount_disks(n.dir)
        network.remove(n.namespace)
        if network.exists(lab.namespace):
            host.run(["ip", "-n", lab.namespace, "link", "del", n.veth], check=False)
        if n.dir.exists():
            _remove_tree(n.dir)


def _namespaces_of_unknown(name: str) -> list[str]:
    """The namespaces that look like lab `name`'s, less those another lab's blueprint claims."""
    claimed = set()
    for other in lab_names():
        if other != name and (lab := Blueprint.load(other)):
            claimed |= {lab.namespace, *(n.namespace for n in lab.nodes)}
    prefix = f"picl-{name}-"
    return [ns for ns in network.namespaces() if ns.startswith(prefix) and ns not in claimed]


def _mounts_under(path: Path) -> list[str]:
    prefix = f"{path}/"
    return [t for _, t, _ in host.mounts() if t == str(path) or t.startswith(prefix)]


def _remove_tree(path: Path) -> None:
    if not path.exists():
        return
    mounted = _mounts_under(path)
    if mounted:
        raise PiclError(f"{path}: cannot remove it, still mounted: {', '.join(mounted)}")
    shutil.rmtree(path)
