"""What only a real kernel shows, on VM lab nodes (`picl lab up --vm`): the NFS share mounted
for real from fstab at boot, a bad fstab line that hangs a boot (which picl never writes), a
real power off, and a lab that comes back after its host rebooted.

Two VM nodes (the server and one client), one lab for the module: each boot is emulated and
takes minutes, so the tests share boots. They run in order, each on what the one before left:
the share applied; a bad mount refused, then one `picl reboot` after which the client is in
multi-user and the share back; `picl shutdown` powering both off; the client booted alone with
its server off; the control (a bad line written by hand), which leaves the client in emergency
mode; the host's reboot, after which the client's card is mended as a person would (in another
machine) and the lab brought up again; and `lab down`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from picl.lab import Cards, ssh
from tests.conftest import Lab, running_lab, session_lab_name
from tests.deploy.risky import Risky, mount, picl_lab

pytestmark = [pytest.mark.lab, pytest.mark.vm]

NODES = ("node0", "node1")
USER = '\n[[users]]\nname = "ada"\nuid = 1000\ngid = 1000\n'
SHARE = """
[[shares]]
name = "shared"
server = "node0"
export = "/srv/shared"
mount = "/shared"
clients = ["node1"]
"""
SERVER = "10.1.10.240:/srv/shared"
BAD_LINE = "/dev/vdz /mnt/broken ext4 defaults 0 2"
BOOT = 1200  # seconds a VM may take to boot, emulated, on a busy machine (bounded, not asserted)


@pytest.fixture(scope="module")
def vms(lab_host: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Risky]:
    """A lab of two VM nodes (the spec's secrets beside it, as the tests' specs have them).

    picl runs with the lab's own allowances for VM nodes (PICL_CONFIRM_TIMEOUT unset)."""
    name = session_lab_name("vm")
    risky = Risky(Lab(name, Path()), tmp_path_factory.mktemp("vm"), confirm_timeout=None)
    with running_lab(name, spec=shared_spec(risky), cards=Cards(vm=True)) as lab:
        risky.lab = lab
        yield risky


def shared_spec(risky: Risky, extra: str = "") -> Path:
    return risky.spec(USER + SHARE + extra, nodes=NODES)


def first(lines: list[str], text: str) -> int:
    """Where `picl reboot` or `shutdown` first said this."""
    return next(i for i, line in enumerate(lines) if text in line)


def booted_state(risky: Risky, node: str) -> str:
    """What systemd says of the boot once it has ended: running or degraded is multi-user."""
    return risky.lab.ssh(node, "systemctl is-system-running --wait", check=False,
                         timeout=BOOT).stdout.strip()


def test_nodes_are_vms_with_a_console(vms: Risky) -> None:
    state = json.loads(picl_lab(vms.lab, "lab", "status", "--json").stdout)
    assert {n["name"]: n["machine"] in ("kvm", "tcg") for n in state["nodes"]} == \
        dict.fromkeys(NODES, True)
    assert "Linux version" in picl_lab(vms.lab, "lab", "console", "node1").stdout
    kernel = vms.lab.ssh("node1", "uname -r").stdout
    assert kernel.strip().endswith("-amd64")  # Debian's own, not this machine's


def test_share_is_mounted_over_nfs_both_ways(vms: Risky) -> None:
    lab = vms.lab
    result = vms.apply(shared_spec(vms), timeout=2 * BOOT)  # apt, emulated
    assert result.returncode == 0, result.stdout + result.stderr
    lab.ssh("node1", "ls /shared")  # the automount mounts it when it is first used
    assert lab.ssh("node1", "findmnt -t nfs4 -n -o SOURCE /shared").stdout.strip() == SERVER
    lab.ssh("node1", "runuser -u ada -- sh -c 'echo from node1 > /shared/from-node1'")
    assert lab.ssh("node0", "stat -c %u:%g /srv/shared/from-node1").stdout.strip() == "1000:1000"
    assert lab.ssh("node0", "cat /srv/shared/from-node1").stdout == "from node1\n"
    lab.ssh("node0", "echo from node0 > /srv/shared/from-node0 && chmod 1777 /srv/shared")
    assert lab.ssh("node1", "cat /shared/from-node0").stdout == "from node0\n"
    lab.ssh("node1", "touch /shared/by-root")  # root on a client is squashed to nobody
    assert lab.ssh("node0", "stat -c %u /srv/shared/by-root").stdout.strip() == "65534"


def test_picl_refuses_a_missing_device_and_both_boot_with_the_share(vms: Risky) -> None:
    """One reboot (`picl reboot`: node1, then node0) shows both: node1 boots to multi-user
    with the mount picl refused, and the share is back on it once the server is."""
    before = vms.fstab("node1")
    result = vms.apply(shared_spec(vms, mount("node1", "/dev/vdz", "/mnt/broken", "ext4",
                                              "defaults")), "node1", timeout=BOOT)
    assert result.returncode == 1, result.stdout + result.stderr
    assert vms.fstab("node1") == before
    result = vms.picl(shared_spec(vms), "reboot", "--yes", timeout=2 * BOOT)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert first(lines, "node1: back") < first(lines, "node0: rebooting")
    assert booted_state(vms, "node1") in ("running", "degraded")
    assert vms.fstab("node1") == before
    lab = vms.lab
    # Neither reads a file: the server's NFSv4 grace period (90 s) holds each open after its
    # boot, for clients to reclaim their locks; a listing and a stat are not held.
    assert "from-node0" in lab.ssh("node1", "ls /shared").stdout.split()
    assert lab.ssh("node1", "findmnt -t nfs4 -n -o SOURCE /shared").stdout.strip() == SERVER
    assert lab.ssh("node1", "stat -c %u:%s /shared/from-node1").stdout.strip() == "1000:11"


def test_shutdown_powers_off_the_worker_before_the_primary(vms: Risky) -> None:
    from picl.lab import node

    lab = vms.lab.blueprint
    result = vms.picl(shared_spec(vms), "shutdown", "--yes", timeout=2 * BOOT)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert first(lines, "node1: off") < first(lines, "node0: powering off") < \
        first(lines, "node0: off")
    assert node.processes(lab.name) == []  # each qemu exited, and its supervisor with it
    for name in NODES:  # powered off by its own kernel: qemu's own exit, not a kill
        log = (lab.node(name).dir / node.SUPERVISOR_LOG).read_text().splitlines()
        assert log[-1].endswith("qemu exited with status 0")


def test_with_its_server_off_a_client_boots_and_check_names_the_share(vms: Risky) -> None:
    """node0 is off (the shutdown above): node1 boots alone to multi-user, its share an
    automount that never held the boot, fails when used rather than hangs, and `picl check`
    says it is not mounted."""
    lab = vms.lab
    assert not picl_lab(lab, "lab", "start", "node1", "--timeout", str(BOOT)).returncode
    assert booted_state(vms, "node1") in ("running", "degraded")
    line = [f for f in vms.fstab("node1").decode().splitlines() if " /shared " in f]
    assert "nofail" in line[0] and "x-systemd.automount" in line[0]
    assert "x-systemd.mount-timeout=30s" in line[0]  # the timeout picl chose
    units = lab.ssh("node1", "systemctl is-active shared.automount shared.mount",
                    check=False).stdout.split()
    assert units == ["active", "inactive"]
    used = lab.ssh("node1", "timeout 600 stat /shared/.; echo $?", check=False, timeout=700)
    assert used.stdout.split()[-1] not in ("0", "124")  # an error, within the mount's timeout
    check = vms.picl(shared_spec(vms), "check", timeout=BOOT)
    assert check.returncode != 0
    assert f"/shared not mounted ({SERVER})" in check.stdout, check.stdout


def test_the_same_line_by_hand_hangs_the_boot_in_emergency_mode(vms: Risky) -> None:
    """The control: what picl refused above, written by hand, leaves the node unbootable."""
    lab = vms.lab
    console = lab.blueprint.node("node1").dir / "console.log"
    lab.ssh("node1", f"echo '{BAD_LINE}' >> /etc/fstab")
    seen = console.stat().st_size
    with suppress(subprocess.TimeoutExpired):
        lab.ssh("node1", "systemctl reboot", check=False, timeout=ssh.VM_PATIENCE)
    deadline = time.monotonic() + BOOT
    while "You are in emergency mode" not in console.read_bytes()[seen:].decode(errors="replace"):
        assert time.monotonic() < deadline, "node1 never reached emergency mode"
        time.sleep(5)
    assert "dev-vdz.device" in console.read_bytes()[seen:].decode(errors="replace")
    with suppress(subprocess.TimeoutExpired):  # no answer at all is the same finding
        assert lab.ssh("node1", "true", check=False, timeout=ssh.VM_PATIENCE + 30).returncode != 0
    assert "You are in emergency mode" in picl_lab(lab, "lab", "console", "node1").stdout


def host_reboot(name: str) -> None:
    """What a reboot of this machine takes from a lab, and nothing more: every process of it
    (as a power cut), and what lives in /run or the kernel alone: the network namespaces (and
    the bridge and taps in them), the lab's SSH control sockets, the accelerator's probe, the
    nodes' cgroups. The lab's state and disks (/var/lib/picl) stay, as on disk."""
    from picl.lab import find, mirror, network, node, ssh, vm
    from picl.lab.supervisor import CGROUP_TOP

    lab = find(name)
    found = node.processes(name)
    for kind in ("supervisor", "qemu", "export"):  # the supervisors first: none boots again
        for p in found:
            if p.kind == kind:
                os.kill(p.pid, signal.SIGKILL)
    for pid in mirror.proxies(name).values():
        os.kill(pid, signal.SIGKILL)
    assert not node.wait_gone(name, None, timeout=30)
    for namespace in [lab.namespace, *(n.namespace for n in lab.nodes)]:
        network.remove(namespace)
    shutil.rmtree(ssh.control_dir(name), ignore_errors=True)
    vm.ACCEL_FILE.unlink(missing_ok=True)
    node.remove_cgroups(f"{CGROUP_TOP}/{name}")


def test_up_after_the_host_rebooted_brings_the_lab_back(vms: Risky) -> None:
    """node1's card is mended first, as a person would in another machine (its disk opened
    while it is off), else it boots into emergency mode again."""
    from picl import lab as labs
    from picl.lab import vm
    from picl.spec import load

    name = vms.lab.name
    built = vms.lab.blueprint  # what `lab status` knows only while the lab is up
    host_reboot(name)
    with vm.opened(built.node("node1")) as root:
        fstab = root / "etc/fstab"
        fstab.write_text("".join(line for line in fstab.read_text().splitlines(keepends=True)
                                 if line.strip() != BAD_LINE))
    spec = shared_spec(vms)
    labs.up(load(spec), name, cards=Cards(vm=True), spec=spec, timeout=BOOT)
    for node in NODES:
        assert booted_state(vms, node) in ("running", "degraded")


def test_down_leaves_no_vm_tap_disk_or_mount(vms: Risky) -> None:
    from picl import lab as labs
    from picl.lab import network, node

    lab = vms.lab.blueprint
    assert labs.down(lab.name)
    assert node.processes(lab.name) == []  # no qemu, supervisor or disk export
    # The taps were in the nodes' namespaces, the bridge in the lab's.
    assert not [ns for ns in network.namespaces() if ns.startswith(f"picl-{lab.name}-")]
    mounts = Path("/proc/mounts").read_text()
    assert str(lab.dir) not in mounts
    assert not lab.dir.exists()  # the nodes' disks went with it; the image's stays cached
