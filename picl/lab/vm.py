"""A lab node as a virtual machine: Debian's kernel on the node's card, booted by qemu.

What a container cannot show needs a kernel of the node's own: NFS mounts, fstab read at boot,
a reboot that really boots. A VM node has the same card as a container node (the image's VM
variant, picl.lab.vmimage), one copy-on-write disk over it (qcow2), a virtio NIC on a tap in
the node's network namespace, bridged to the node's cable (picl.lab.network), and its serial
console in a log file. Its supervisor runs qemu as it runs nspawn; qemu reboots the machine
itself, and exits when it powers off.

KVM is used where it can run a stock kernel (probed once per host boot); else software
emulation (TCG), which is slower but runs anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from picl.errors import PiclError
from picl.lab import host, image, vmimage
from picl.lab.blueprint import NETNS, Blueprint, NodeBlueprint
from picl.lab.network import TAP

MEMORY_MB = 512
# Translated code cache: qemu's default (1 GiB) would make each VM hold ~960 MB.
TCG = ["-accel", "tcg,tb-size=128"]
KVM = ["-accel", "kvm", "-cpu", "host"]
# As a Pi's cmdline.txt: root read-only until systemd remounts it as fstab says, and no AppArmor
# (a Pi's kernel turns it on only when asked; emulated, loading its profiles takes a minute).
CMDLINE = "root=/dev/vda rootfstype=ext4 console=ttyS0 fsck.repair=yes rootwait apparmor=0"
ACCEL_ENV = "PICL_LAB_ACCEL"  # kvm or tcg: skips the probe
ACCEL_FILE = Path("/run/picl/lab-accel")  # the probe's answer, until the host reboots
PROBE_SECONDS = 60
DISK = "disk.qcow2"
EXPORT = "disk.raw"  # the disk as a raw file (a FUSE export), while the lab writes to it
HOST_KEY_COPY = "host_key.pub"
# What `lab up` and `lab start` allow a VM node to boot to SSH, on top of a container's.
# Emulated, a boot took 1 minute on an idle machine and over 10 on a busy one.
BOOT_ALLOWANCE = {"kvm": 60.0, "tcg": 1200.0}
LINK_FILE = "etc/systemd/network/10-picl-lab-wired.link"
LINK = """\
# picl lab: the VM's wired NIC gets the spec's interface name, as the board's has.
[Match]
MACAddress={mac}

[Link]
Name={interface}
"""

# What the node needs to be reached (its network, sshd) may take as long as it takes to start:
# emulated on a loaded machine, a start is several times slower, and at systemd's 90 s the unit
# would fail and leave the node unreachable until someone reboots it.
SLOW_START_UNITS = ("NetworkManager.service", "dhcpcd.service", "ssh.service")
SLOW_START = """\
# picl lab: an emulated machine is slow, not broken.
[Service]
TimeoutStartSec=infinity
"""


def disk(node: NodeBlueprint) -> Path:
    return node.dir / DISK


def qmp(node: NodeBlueprint) -> Path:
    """qemu's control socket: how the supervisor presses the power button."""
    return node.dir / "qmp.sock"


def mac(node: NodeBlueprint) -> str:
    """The NIC's address: locally administered (qemu's prefix), the same at every boot."""
    digest = hashlib.sha256(node.machine.encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])


def ensure_disk(node: NodeBlueprint) -> None:
    """The node's disk: a qcow2 overlay over its image's VM disk (made once; its own after)."""
    base = vmimage.directory(node.image) / vmimage.DISK
    if not base.is_file():
        raise PiclError(f"node {node.name}: the VM disk of image {node.image} is gone ({base})")
    if disk(node).exists():
        return
    node.dir.mkdir(parents=True, exist_ok=True)
    host.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "raw",
              str(disk(node))])  # fmt: skip


@contextmanager
def opened(node: NodeBlueprint) -> Iterator[Path]:
    """The node's disk mounted at node.root while it is off: how the lab writes the card.

    qemu-storage-daemon exports the qcow2 as a raw file (FUSE), mounted through a loop device.
    """
    host.preflight(("qemu-storage-daemon", "mount"))
    export = node.dir / EXPORT
    pidfile = node.dir / "export.pid"
    export.touch()
    host.run([
        "qemu-storage-daemon", "--daemonize", "--pidfile", str(pidfile),
        "--blockdev", f"driver=file,node-name=file,filename={disk(node)}",
        "--blockdev", "driver=qcow2,node-name=disk,file=file",
        "--export", f"type=fuse,id=card,node-name=disk,mountpoint={export},writable=on",
    ])  # fmt: skip
    try:
        node.root.mkdir(parents=True, exist_ok=True)
        host.run(["mount", "-o", "loop", str(export), str(node.root)])
        try:
            yield node.root
        finally:
            host.run(["umount", str(node.root)])
    finally:
        stop_export(pidfile)
        export.unlink(missing_ok=True)


def stop_export(pidfile: Path) -> None:
    """End a disk export (it unmounts its FUSE file as it exits)."""
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def keep_host_key(node: NodeBlueprint, host_key_pub: Path) -> None:
    """A copy of the node's public host key beside its disk: known_hosts is written from it
    while the node runs (its disk cannot be mounted then)."""
    shutil.copyfile(host_key_pub, node.dir / HOST_KEY_COPY)


def name_interface(lab: Blueprint, node: NodeBlueprint) -> None:
    """The NIC is named as the spec's interface, as a board's wired link is (on its disk)."""
    link = node.root / LINK_FILE
    text = LINK.format(mac=mac(node), interface=lab.interface)
    if not link.exists() or link.read_text() != text:
        link.parent.mkdir(parents=True, exist_ok=True)
        link.write_text(text)


def allow_slow_start(node: NodeBlueprint) -> None:
    """The node's network and sshd may take as long as they need to start (on its disk)."""
    for unit in SLOW_START_UNITS:
        image.drop_in(node.root, unit, SLOW_START)


def accel() -> str:
    """"kvm" when KVM runs a stock kernel here, else "tcg"; probed once per host boot."""
    forced = os.environ.get(ACCEL_ENV)
    if forced in ("kvm", "tcg"):
        return forced
    try:
        return ACCEL_FILE.read_text().strip()
    except OSError:
        pass
    found = "kvm" if _kvm_boots() else "tcg"
    ACCEL_FILE.parent.mkdir(parents=True, exist_ok=True)
    ACCEL_FILE.write_text(f"{found}\n")
    return found


def _kvm_boots() -> bool:
    """Whether a stock kernel gets as far as looking for its root under KVM.

    /dev/kvm may be there and still not run one (a paravirtual KVM stalls, then fails with
    "KVM internal error"): the kernel is booted with no root and must panic for want of it.
    """
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError:
        return False
    kernels = sorted(vmimage_kernels())
    if not kernels:
        return False
    argv = [
        "qemu-system-x86_64", *KVM, "-m", "256", "-nodefaults", "-display", "none",
        "-no-reboot", "-serial", "stdio", "-kernel", str(kernels[0]),
        "-append", "console=ttyS0 panic=-1 root=/dev/picl-none",
    ]  # fmt: skip
    try:
        proc = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL,
                              timeout=PROBE_SECONDS)  # fmt: skip
    except subprocess.TimeoutExpired:
        return False
    return b"Kernel panic" in proc.stdout or b"VFS:" in proc.stdout


def vmimage_kernels() -> list[Path]:
    """The kernels of every VM disk built on this machine."""
    return list(image.IMAGES.glob(f"*/vm/{vmimage.KERNEL}"))


def qemu_argv(lab: Blueprint, node: NodeBlueprint, how: str) -> list[str]:
    """qemu booting the node, inside its network namespace (where its tap is)."""
    kernel = vmimage.directory(node.image)
    return [
        "nsenter", f"--net={NETNS / node.namespace}", "--",
        "qemu-system-x86_64",
        "-name", node.machine,
        "-pidfile", str(node.dir / "qemu.pid"),
        *(KVM if how == "kvm" else TCG),
        "-m", str(MEMORY_MB), "-smp", "1",
        "-nodefaults", "-display", "none",
        "-kernel", str(kernel / vmimage.KERNEL),
        "-initrd", str(kernel / vmimage.INITRD),
        "-append", CMDLINE,
        "-drive", f"file={disk(node)},if=virtio,format=qcow2",
        "-netdev", f"tap,id=wired,ifname={TAP},script=no,downscript=no",
        "-device", f"virtio-net-pci,netdev=wired,mac={mac(node)}",
        "-chardev", f"file,id=console,path={node.dir / 'console.log'},append=on",
        "-serial", "chardev:console",
        "-qmp", f"unix:{qmp(node)},server=on,wait=off",
    ]  # fmt: skip


def boot_allowance(nodes: list[NodeBlueprint]) -> float:
    """Seconds more than containers that these nodes may take to answer SSH."""
    vms = [n for n in nodes if n.vm]
    if not vms:
        return 0.0
    # Emulated machines share the cores: each one more slows the others.
    return BOOT_ALLOWANCE[accel()] * max(1, len(vms) / max(1, os.cpu_count() or 1))


def machine(node: NodeBlueprint) -> str:
    """What runs the node: "container", or the VM's accelerator as it was last booted."""
    if not node.vm:
        return "container"
    try:
        return str(json.loads((node.dir / "boot.json").read_text()).get("accel", "vm"))
    except (OSError, ValueError):
        return "vm"
