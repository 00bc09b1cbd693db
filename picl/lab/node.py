"""One lab node: its disk (an overlay on the image), its identity, and its power.

A node is booted by a supervisor (picl.lab.supervisor) that runs systemd-nspawn and boots it
again when its init asks for a reboot. Everything a node runs is found from /proc: the
supervisor and nspawn by their command lines, the container's own processes by their root
mount, which is the node's overlay. That also finds what a crashed run left behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from picl.errors import PiclError
from picl.lab import host, image, imager, mirror, pios, vm
from picl.lab.blueprint import (
    NETNS,
    STATE,
    UPLINK_INTERFACE,
    UPLINK_SUBNET,
    Blueprint,
    NodeBlueprint,
)
from picl.lab.network import TAP
from picl.lab.supervisor import CGROUP_TOP, cgroup_roots

log = logging.getLogger(__name__)

HOST_KEY = "etc/ssh/ssh_host_ed25519_key"
# On a board each person logs in with a key of their own; in the lab, the lab's key stands for
# all of them: sshd also reads it for every user, so `ssh federico@node0` (and a push as the
# spec's user) works once picl has made the user.
LAB_KEYS = "etc/ssh/picl-lab-keys"
USERS_DROP_IN = "etc/ssh/sshd_config.d/picl-lab-users.conf"
USERS_SSHD = f"""\
# picl lab: the lab's key stands for every user's own key (see {LAB_KEYS}).
AuthorizedKeysFile .ssh/authorized_keys .ssh/authorized_keys2 /{LAB_KEYS}
"""
NM_PROFILE = "Wired connection 1"
# What a board's wired profile looks like once someone gave it a static address: no gateway,
# so the default route stays with Wi-Fi (DESIGN: "a fixed wired network").
NM_KEYFILE = """\
[connection]
id={id}
uuid={uuid}
type=ethernet
interface-name={interface}
autoconnect=true

[ethernet]

[ipv4]
method=manual
address1={address}/{prefixlen}
never-default=true

[ipv6]
method=auto
addr-gen-mode=stable-privacy
"""
# bullseye: dhcpcd is in charge; a static address is a block of dhcpcd.conf (no `routers`:
# no gateway, as above).
DHCPCD_CONF = "etc/dhcpcd.conf"
DHCPCD_BLOCK = """
# picl lab: the wired link's static address
interface {interface}
static ip_address={address}/{prefixlen}
"""
# A container has no CAP_SYS_TIME, so chrony's unit would not start (ConditionCapability).
# `chronyd -x` serves and follows time without setting the clock (chronyd(8): "e.g. in some
# containers"): the cluster's NTP is real, only the kernel's clock is this machine's.
CHRONY_DROP_IN = "etc/systemd/system/chrony.service.d/picl-lab.conf"
CHRONY_WITHOUT_CLOCK = """\
# picl lab: no CAP_SYS_TIME in a container; chronyd serves time without setting the clock.
[Unit]
ConditionCapability=

[Service]
ExecStart=
ExecStart=!/usr/sbin/chronyd -x $DAEMON_OPTS
"""
# On a node NetworkManager cannot run on (pios.networkmanager_cannot_run) the cable brings the
# address; NetworkManager stays enabled, as on a board, but starts nothing (it would abort and
# restart in a loop), and the lab's nmcli (picl/lab/nmcli.sh) answers for it. wait-online,
# which would wait for it in vain, is masked.
NETWORKMANAGER_UNIT = "etc/systemd/system/NetworkManager.service"
NETWORKMANAGER_DROP_IN = f"{NETWORKMANAGER_UNIT}.d/picl-lab.conf"
NETWORKMANAGER_STAND_IN = """\
# picl lab: NetworkManager aborts under qemu-user (a generic netlink socket it does not
# emulate). The lab set the wired address on the node's cable; /usr/local/bin/nmcli answers.
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=
ExecStart=/bin/true
ExecReload=
ExecReload=/bin/true
Restart=no
"""
WAIT_ONLINE = "etc/systemd/system/NetworkManager-wait-online.service"
NMCLI = "usr/local/bin/nmcli"
# Masked for every user's manager on an emulated node: under qemu-user its ExecStartPost
# (`systemctl --user set-environment`) and the manager it calls can spin at full CPU until the
# manager's start times out (90 s), and the SSH login that started it (a push) waits as long.
USER_BUS_SOCKET = "etc/systemd/user/dbus.socket"
# How a site points apt at its proxy (pi-gen writes the same when built with APT_PROXY).
APT_PROXY_CONF = "etc/apt/apt.conf.d/51cache"
FLASHED = "flashed"  # in the node's directory: its card was made (once, when its disk was new)
UPLINK_PROFILE = "Uplink"
# The uplink carries the default route, as the Wi-Fi does on a board (its router goes nowhere).
UPLINK_KEYFILE = """\
[connection]
id={id}
uuid={uuid}
type=ethernet
interface-name={interface}
autoconnect=true

[ethernet]

[ipv4]
method=manual
address1={address}/{prefixlen},{gateway}

[ipv6]
method=auto
addr-gen-mode=stable-privacy
"""
SUPERVISOR_LOG = "supervisor.log"
# With a network namespace of our own making nspawn keeps /proc/sys/net read-only, where
# NetworkManager must write: this is nspawn's documented switch for exactly that.
NSPAWN_ENV = {"SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"}


@dataclass(frozen=True)
class Process:
    """A process of some lab node, as found in /proc."""

    pid: int
    kind: str  # "supervisor", "nspawn", "container", "qemu" or "export" (a VM's disk, opened)
    lab: str
    node: str
    init: bool = False  # the container's PID 1 (its systemd), or the VM


# -- the disk ------------------------------------------------------------------------------


def mount_disk(node: NodeBlueprint) -> None:
    """Mount the node's overlay (idempotent): the image below, the node's own changes above."""
    if host.is_mounted(node.root):
        return
    for path in (node.upper, node.work, node.root):
        path.mkdir(parents=True, exist_ok=True)
    lower = image.rootfs(node.image)
    if not lower.is_dir():
        raise PiclError(f"node {node.name}: its image {node.image} is gone from {image.IMAGES}")
    options = f"lowerdir={lower},upperdir={node.upper},workdir={node.work}"
    host.run(["mount", "-t", "overlay", "overlay", "-o", options, str(node.root)])


def unmount_disks(lab_dir: Path) -> None:
    """Unmount everything mounted under a lab's directory, deepest first."""
    prefix = f"{lab_dir}/"
    targets = [t for _, t, _ in host.mounts() if t.startswith(prefix)]
    for target in sorted(targets, key=len, reverse=True):
        if host.run(["umount", target], check=False).returncode != 0:
            # Still busy (a process we could not stop): detach it, it goes when they do.
            host.run(["umount", "--lazy", target])
        log.info("unmounted %s", target)


def provision(lab: Blueprint, node: NodeBlueprint, authorized_key: str) -> None:
    """Give a node what a freshly set-up board has: the imager's settings (its name, the first
    user), its identity and host key, its wired address, and what the lab needs: root's key
    (the lab's key, which also stands for every user's own), the lab's apt proxy, chrony
    without the clock a container cannot set, and, on an emulated node, a stand-in for
    NetworkManager (where it cannot run) and no session bus for users' managers.

    Only what is missing is written: a node's disk keeps what happened to it since.
    """
    root = node.root
    if not (node.dir / FLASHED).exists():
        imager.customise(root, node.name, lab.first_user)
        (node.dir / FLASHED).write_text(f"{node.release} {node.arch} {node.image}\n")
    machine_id = root / "etc/machine-id"
    if not machine_id.read_text().strip():
        machine_id.write_text(f"{uuid.uuid4().hex}\n")
    key = root / HOST_KEY
    if not key.exists():
        host.keygen(key, f"root@{node.name}")
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    present = keys.read_text() if keys.exists() else ""
    if authorized_key.strip() not in present:
        separator = "\n" if present and not present.endswith("\n") else ""
        with open(keys, "a") as f:
            f.write(f"{separator}{authorized_key.strip()}\n")
        keys.chmod(0o600)
    if not (root / USERS_DROP_IN).exists():
        (root / USERS_DROP_IN).parent.mkdir(parents=True, exist_ok=True)
        (root / LAB_KEYS).write_text(f"{authorized_key.strip()}\n")
        (root / USERS_DROP_IN).write_text(USERS_SSHD)
    proxy = root / APT_PROXY_CONF
    setting = f'Acquire::http {{ Proxy "{mirror.proxy_url(lab)}"; }};\n'
    if not proxy.exists() or proxy.read_text() != setting:
        proxy.write_text(setting)
    chrony = root / CHRONY_DROP_IN
    if not chrony.exists():  # waits for chrony, which picl installs
        chrony.parent.mkdir(parents=True, exist_ok=True)
        chrony.write_text(CHRONY_WITHOUT_CLOCK)
    if pios.release(node.release).network == "dhcpcd":
        _dhcpcd_address(lab, node)
    else:
        _networkmanager_address(lab, node)
    if pios.networkmanager_cannot_run(node.release, node.arch):  # its address is the cable's
        _networkmanager_stand_in(root)
    user_bus = root / USER_BUS_SOCKET
    if node.arch != pios.native_arch() and not user_bus.is_symlink():
        user_bus.parent.mkdir(parents=True, exist_ok=True)
        user_bus.symlink_to("/dev/null")


def _networkmanager_stand_in(root: Path) -> None:
    """NetworkManager enabled but starting nothing, wait-online masked, the lab's nmcli."""
    unit = root / NETWORKMANAGER_UNIT
    if unit.is_symlink() and os.readlink(unit) == "/dev/null":  # masked by an older lab
        unit.unlink()
    drop_in = root / NETWORKMANAGER_DROP_IN
    drop_in.parent.mkdir(parents=True, exist_ok=True)
    drop_in.write_text(NETWORKMANAGER_STAND_IN)
    wait_online = root / WAIT_ONLINE
    if not wait_online.is_symlink():
        wait_online.symlink_to("/dev/null")
    nmcli = root / NMCLI
    nmcli.write_text((files("picl.lab") / "nmcli.sh").read_text())
    nmcli.chmod(0o755)


def _dhcpcd_address(lab: Blueprint, node: NodeBlueprint) -> None:
    """The static address in dhcpcd.conf, as a bullseye user writes it."""
    conf = node.root / DHCPCD_CONF
    present = conf.read_text() if conf.exists() else ""
    if f"\ninterface {lab.interface}\n" not in f"\n{present}":
        block = DHCPCD_BLOCK.format(
            interface=lab.interface, address=node.address, prefixlen=lab.prefixlen
        )
        conf.write_text(present + ("" if present.endswith("\n") or not present else "\n") + block)


def _networkmanager_address(lab: Blueprint, node: NodeBlueprint) -> None:
    """The static address as a NetworkManager profile, as a bookworm user saves it.

    With the lab's uplink, a second profile for it (the uplink is a NetworkManager lab's only).
    """
    _profile(node.root, NM_PROFILE, NM_KEYFILE.format(
        id=NM_PROFILE,
        uuid=uuid.uuid5(uuid.NAMESPACE_DNS, f"{node.name}.{lab.cluster}.picl-lab"),
        interface=lab.interface,
        address=node.address,
        prefixlen=lab.prefixlen,
    ))
    if lab.uplink:
        _profile(node.root, UPLINK_PROFILE, UPLINK_KEYFILE.format(
            id=UPLINK_PROFILE,
            uuid=uuid.uuid5(uuid.NAMESPACE_DNS, f"{node.name}.{lab.cluster}.picl-lab-uplink"),
            interface=UPLINK_INTERFACE,
            address=node.uplink_address,
            prefixlen=UPLINK_SUBNET.prefixlen,
            gateway=UPLINK_SUBNET.network_address + 1,
        ))


def _profile(root: Path, name: str, text: str) -> None:
    """A NetworkManager profile on the node's disk, unless it has one of that name."""
    profile = root / f"etc/NetworkManager/system-connections/{name}.nmconnection"
    if not profile.exists():
        profile.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(profile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # NM ignores others
        with os.fdopen(fd, "w") as f:
            f.write(text)


def host_key(node: NodeBlueprint) -> str:
    """The node's public host key (`TYPE BASE64`), from its disk (a VM's: from its copy)."""
    path = node.dir / vm.HOST_KEY_COPY if node.vm else node.root / f"{HOST_KEY}.pub"
    fields = path.read_text().split()
    return f"{fields[0]} {fields[1]}"


# -- power ---------------------------------------------------------------------------------


def nspawn_argv(node: NodeBlueprint) -> list[str]:
    return [
        "systemd-nspawn",
        "--quiet",
        "--boot",
        f"--directory={node.root}",
        f"--machine={node.machine}",
        f"--network-namespace-path={NETNS / node.namespace}",
        # The node configures its own interface (NetworkManager), as a board does.
        "--capability=CAP_NET_ADMIN",
        "--register=no",
        "--keep-unit",
        "--console=read-only",
        "--link-journal=no",
        # Leave the node's /etc as its image has it.
        "--resolv-conf=off",
        "--timezone=off",
    ]


def cgroup(node: NodeBlueprint) -> str:
    """The node's cgroup, relative to each hierarchy's root (see supervisor.enter_cgroup)."""
    return f"{CGROUP_TOP}/{node.lab}/{node.name}"


def remove_cgroups(relative: str) -> None:
    """Remove a cgroup and those below it, in every hierarchy; busy ones (in use) stay."""
    for root in cgroup_roots():
        top = root / relative
        if not top.is_dir():
            continue
        below = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for path in [*below, top]:
            try:
                path.rmdir()
            except OSError as exc:
                log.info("left cgroup %s: %s", path, exc.strerror)
        for parent in top.relative_to(root).parents:
            if parent != Path("."):
                with contextlib.suppress(OSError):
                    (root / parent).rmdir()  # only when empty


def power_on(lab: Blueprint, node: NodeBlueprint) -> None:
    """Start the node's supervisor, which boots it (and boots it again when it reboots)."""
    node.dir.mkdir(parents=True, exist_ok=True)
    boot: dict[str, object] = {
        "argv": nspawn_argv(node),
        "env": NSPAWN_ENV,
        "cgroup": cgroup(node),
        "namespace": node.namespace,
        "interface": lab.interface,
    }
    if node.vm:
        how = vm.accel()
        boot.update(argv=vm.qemu_argv(lab, node, how), env={}, interface=TAP, accel=how,
                    qmp=str(vm.qmp(node)))  # fmt: skip
    (node.dir / "boot.json").write_text(json.dumps(boot, indent=2) + "\n")
    with open(node.dir / SUPERVISOR_LOG, "a") as out:
        # The supervisor daemonizes: this returns once it is on its own.
        subprocess.run(
            [sys.executable, "-m", "picl.lab.supervisor", str(node.dir)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            check=True,
        )


def processes(lab: str | None = None) -> list[Process]:
    """Every process of lab nodes on this machine (of one lab, if named)."""
    own_mnt = os.stat("/proc/self/ns/mnt").st_ino
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            process = _identify(pid, own_mnt)
        except OSError:
            continue  # it ended while we looked (an exiting process's mountinfo: EINVAL)
        if process and (lab is None or process.lab == lab):
            found.append(process)
    return found


def _identify(pid: int, own_mnt: int) -> Process | None:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    args = [a.decode(errors="replace") for a in argv if a]
    if not args:
        return None  # a kernel thread or a zombie
    if "picl.lab.supervisor" in args and len(args) >= 2:
        where = _lab_node(Path(args[-1]))
        return Process(pid, "supervisor", *where) if where else None
    if os.path.basename(args[0]).startswith("qemu-") and "-pidfile" in args:
        where = _lab_node(Path(args[args.index("-pidfile") + 1]).parent)
        return Process(pid, "qemu", *where, init=True) if where else None
    if os.path.basename(args[0]) == "qemu-storage-daemon" and "--pidfile" in args:
        where = _lab_node(Path(args[args.index("--pidfile") + 1]).parent)
        return Process(pid, "export", *where) if where else None
    if os.path.basename(args[0]) == "systemd-nspawn":
        for arg in args:
            if arg.startswith("--directory="):
                where = _lab_node(Path(arg.removeprefix("--directory=")).parent)
                return Process(pid, "nspawn", *where) if where else None
        return None
    if os.stat(f"/proc/{pid}/ns/mnt").st_ino == own_mnt:
        return None
    where = _root_overlay(pid)
    if not where:
        return None
    return Process(pid, "container", *where, init=_is_namespace_init(pid))


def _lab_node(node_dir: Path) -> tuple[str, str] | None:
    """(lab, node) of a node directory STATE/LAB/nodes/NODE."""
    try:
        rel = node_dir.relative_to(STATE)
    except ValueError:
        return None
    parts = rel.parts
    if len(parts) == 3 and parts[1] == "nodes":
        return parts[0], parts[2]
    return None


def _root_overlay(pid: int) -> tuple[str, str] | None:
    """(lab, node) when the process's root is a lab node's overlay."""
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 10 or fields[4] != "/":
                continue
            sep = fields.index("-")
            if fields[sep + 1] != "overlay":
                continue
            for option in fields[sep + 3].split(","):
                if option.startswith("upperdir="):
                    upper = Path(host.unescape(option.removeprefix("upperdir=")))
                    return _lab_node(upper.parent)
    return None


def _is_namespace_init(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                ids = line.split()[1:]
                return len(ids) > 1 and ids[-1] == "1"
    return False


def is_running(node: NodeBlueprint, found: list[Process]) -> bool:
    """Whether the node's systemd is up (its supervisor may be between two boots)."""
    return any(p.init and p.lab == node.lab and p.node == node.name for p in found)


def is_powered(node: NodeBlueprint, found: list[Process]) -> bool:
    """Whether anything of the node runs: its supervisor, nspawn, container or VM."""
    return any(p.lab == node.lab and p.node == node.name for p in found)


def shut_down(found: list[Process]) -> None:
    """Ask these nodes to power off through their own init (as `poweroff` would)."""
    supervised = {(p.lab, p.node) for p in found if p.kind == "supervisor"}
    for p in found:
        if p.kind == "supervisor":
            # It tells nspawn, which halts the container through its systemd, and then exits.
            _signal(p.pid, signal.SIGTERM)
        elif p.kind == "container" and p.init and (p.lab, p.node) not in supervised:
            _signal(p.pid, signal.SIGRTMIN + 4)  # systemd: poweroff
        elif p.kind == "qemu" and (p.lab, p.node) not in supervised:
            _signal(p.pid, signal.SIGTERM)  # no one to press its power button: qemu quits


def cut_power(found: list[Process]) -> None:
    """Pull the plug: SIGKILL each VM, and each container's init, which takes its whole PID
    namespace along.

    nspawn then exits (not with the reboot status), and so does its supervisor: each is reaped
    by its parent instead of being left a zombie. What is still there after a while is killed.
    """
    inits = {p.pid for p in found if p.init}
    # (what, how long it may take to exit by itself once the one before it is gone)
    for kind, grace in (
        ("qemu", 0.0), ("container", 0.0), ("nspawn", 2.0), ("supervisor", 2.0), ("export", 0.0)
    ):
        pids = sorted((p.pid for p in found if p.kind == kind), key=lambda pid: pid not in inits)
        _wait_exit(pids, timeout=grace)
        for pid in pids:
            if _alive(pid):
                _signal(pid, signal.SIGKILL)
        _wait_exit(pids, timeout=5)


def _alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _wait_exit(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)


def wait_gone(lab: str | None, nodes: set[str] | None, timeout: float) -> list[Process]:
    """Wait until no process of these nodes is left; what is still there at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in processes(lab) if nodes is None or p.node in nodes]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def forget_runtime(node_machine: str) -> None:
    """What nspawn keeps under /run for a container and removes itself only on a clean exit."""
    propagate = host.NSPAWN_RUN / "propagate" / node_machine
    if propagate.is_dir() and not host.is_mounted(propagate):
        for child in propagate.iterdir():
            if child.is_file() or child.is_symlink():
                child.unlink()
        try:
            propagate.rmdir()
        except OSError as exc:
            log.info("left %s: %s", propagate, exc)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
