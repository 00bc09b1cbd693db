"""What only a real kernel shows, on VM lab nodes (`picl lab up --vm`): the NFS share mounted
for real from fstab at boot, and a bad fstab line that hangs a boot, which picl never writes.

Two VM nodes (the server and one client), one lab for the module: each boot is emulated and
takes a minute or more. The control (a bad line written by hand) leaves its node in emergency
mode, so it runs last, before the lab is taken down.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from picl.lab import Cards
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
    """A lab of two VM nodes (the spec's secrets beside it, as the tests' specs have them)."""
    name = session_lab_name("vm")
    risky = Risky(Lab(name, Path()), tmp_path_factory.mktemp("vm"))
    with running_lab(name, spec=shared_spec(risky), cards=Cards(vm=True)) as lab:
        risky.lab = lab
        yield risky


def shared_spec(risky: Risky, extra: str = "") -> Path:
    return risky.spec(USER + SHARE + extra, nodes=NODES)


def reboot(risky: Risky, node: str) -> None:
    """Reboot a VM node; return once it has booted again and answers SSH."""
    before = risky.boot_id(node)
    risky.lab.ssh(node, "systemctl reboot", check=False, timeout=60)
    risky.wait_booted(node, before, timeout=BOOT)


def test_nodes_are_vms_with_a_console(vms: Risky) -> None:
    state = json.loads(picl_lab(vms.lab, "lab", "status", "--json").stdout)
    assert {n["name"]: n["machine"] in ("kvm", "tcg") for n in state["nodes"]} == \
        dict.fromkeys(NODES, True)
    assert "Linux version" in picl_lab(vms.lab, "lab", "console", "node1").stdout
    kernel = vms.lab.ssh("node1", "uname -r").stdout
    assert kernel.strip().endswith("-amd64")  # Debian's own, not this machine's


# Open (#16): on emulated VM nodes the first apply rolls the wired link back (node1: a new SSH
# connection is not answered within the 10 s confirm window; node0: NetworkManager does not know
# the connection picl activates), so these proofs never reach their point. Kept, not run.
SLOW_CONFIRM = pytest.mark.xfail(run=False, reason="a VM node confirms slower than the 10 s window")


@SLOW_CONFIRM
def test_share_is_mounted_over_nfs_both_ways_and_after_a_reboot(vms: Risky) -> None:
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
    reboot(vms, "node1")
    assert lab.ssh("node1", "cat /shared/from-node0").stdout == "from node0\n"
    assert lab.ssh("node1", "findmnt -t nfs4 -n -o SOURCE /shared").stdout.strip() == SERVER


@SLOW_CONFIRM
def test_picl_refuses_a_missing_device_and_the_node_still_boots(vms: Risky) -> None:
    before = vms.fstab("node1")
    result = vms.apply(shared_spec(vms, mount("node1", "/dev/vdz", "/mnt/broken", "ext4",
                                              "defaults")), "node1", timeout=BOOT)
    assert result.returncode == 1, result.stdout + result.stderr
    assert vms.fstab("node1") == before
    reboot(vms, "node1")
    state = vms.lab.ssh("node1", "systemctl is-system-running --wait", check=False).stdout
    assert state.strip() in ("running", "degraded")
    assert vms.fstab("node1") == before


@SLOW_CONFIRM
def test_the_same_line_by_hand_hangs_the_boot_in_emergency_mode(vms: Risky) -> None:
    """The control: what picl refused above, written by hand, leaves the node unbootable."""
    lab = vms.lab
    console = lab.blueprint.node("node1").dir / "console.log"
    lab.ssh("node1", f"echo '{BAD_LINE}' >> /etc/fstab")
    seen = console.stat().st_size
    lab.ssh("node1", "systemctl reboot", check=False, timeout=30)
    deadline = time.monotonic() + BOOT
    while "You are in emergency mode" not in console.read_bytes()[seen:].decode(errors="replace"):
        assert time.monotonic() < deadline, "node1 never reached emergency mode"
        time.sleep(5)
    assert "dev-vdz.device" in console.read_bytes()[seen:].decode(errors="replace")
    assert lab.ssh("node1", "true", check=False, timeout=30).returncode != 0
    assert "You are in emergency mode" in picl_lab(lab, "lab", "console", "node1").stdout


def test_down_leaves_no_vm_tap_disk_or_mount(vms: Risky) -> None:
    from picl import lab as labs
    from picl.lab import network, node

    lab = vms.lab.blueprint
    assert labs.down(lab.name)
    assert node.processes(lab.name) == []  # no qemu, supervisor or disk export
    assert not [ns for ns in network.namespaces() if ns.startswith(f"picl-{lab.name}-")]
    mounts = Path("/proc/mounts").read_text()
    assert str(lab.dir) not in mounts
    assert not lab.dir.exists()  # the nodes' disks went with it; the image's stays cached
