"""One apply converges a cluster of freshly flashed boards on three releases (node0 bookworm,
node1 trixie, node2 bullseye): nothing picl needs is there before, everything works after.

chrony cannot set a container's clock (no CAP_SYS_TIME); the lab runs it with `-x`, so what is
shown is real NTP between the nodes, the primary serving, the others following it. No nfsd in
a container's kernel: the share is shown exported (`exportfs`), not mounted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from picl.lab import Cards
from tests.conftest import Lab, running_lab, session_lab_name
from tests.deploy.reference import Cluster

pytestmark = [pytest.mark.lab, pytest.mark.releases("trixie", "bullseye")]

RELEASES = {"node0": "bookworm", "node1": "trixie", "node2": "bullseye"}
# What picl installs and a freshly flashed card lacks: the NFS server on the primary, chrony
# everywhere, the NFS client on trixie (its Lite has none).
NEEDED = {
    "node0": {"package chrony (for time)", "package nfs-kernel-server (for shares)"},
    "node1": {"package chrony (for time)", "package nfs-common (for mounts)"},
    "node2": {"package chrony (for time)"},
}


def installed(lab: Lab, node: str, package: str) -> bool:
    shown = lab.ssh(node, f"dpkg-query -W -f='${{Status}}' {package}", check=False).stdout
    return shown.endswith("ok installed")


@pytest.fixture(scope="module")
def mixed(lab_host: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cards = Cards.parse([f"{n}={r}" for n, r in RELEASES.items()])
    with running_lab(session_lab_name("mixed-apply"), cards=cards) as lab:
        yield Cluster(lab, tmp_path_factory.mktemp("mixed"))


@pytest.fixture(scope="module")
def first(mixed: Cluster) -> dict:
    """The plan of the fresh cards, then the one apply that converges them."""
    lab = mixed.lab
    for node in RELEASES:
        for package in ("chrony", "nfs-kernel-server", "git"):
            assert not installed(lab, node, package), f"{node}: {package} already installed"
    plan = mixed.plan()
    applied = mixed.picl("apply", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Apply: 3 nodes converged, 0 failed" in applied.stdout
    return plan


def test_the_plan_installs_what_each_release_lacks_first(first: dict) -> None:
    for node in first["nodes"]:
        resources = [c["resource"] for c in node["changes"]]
        packages = [r for r in resources if r.startswith("package ")]
        assert NEEDED[node["node"]] <= set(packages), node["node"]
        assert resources[: len(packages)] == packages  # before everything that needs them


def test_after_one_apply_the_plan_is_empty(mixed: Cluster, first: dict) -> None:
    result = mixed.picl("plan", "--detailed-exitcode")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes" in result.stdout


def test_chrony_replaced_timesyncd_everywhere(mixed: Cluster, first: dict) -> None:
    for node in RELEASES:
        assert installed(mixed.lab, node, "chrony")
        assert not installed(mixed.lab, node, "systemd-timesyncd"), node
        assert mixed.lab.ssh(node, "systemctl is-active chrony").stdout.strip() == "active"


def synchronised(lab: Lab, node: str) -> None:
    """Wait (bounded: 60 tries a second apart) until chrony on `node` has synchronised."""
    lab.ssh(node, "chronyc waitsync 60 0 0 1")


@pytest.mark.parametrize("node", ["node1", "node2"])
def test_the_primary_serves_time_to_the_others(mixed: Cluster, first: dict, node: str) -> None:
    lab = mixed.lab
    synchronised(lab, node)
    selected = [line for line in lab.ssh(node, "chronyc sources").stdout.splitlines()
                if line.startswith("^*")]
    assert selected and selected[0].split()[1] == "node0.cluster", selected
    # The primary has no upstream here: it serves its own clock at stratum 10 (`local`).
    tracking = lab.ssh("node0", "chronyc tracking").stdout
    assert "Stratum         : 10" in tracking
    clients = lab.ssh("node0", "chronyc -n clients").stdout
    assert lab.address(node) in clients


def test_the_share_is_exported_by_the_primary(mixed: Cluster, first: dict) -> None:
    lab = mixed.lab
    assert installed(lab, "node0", "nfs-kernel-server")
    exported = [line.split() for line in lab.ssh("node0", "exportfs -v").stdout.splitlines()]
    assert [(e[0], e[1].split("(")[0]) for e in exported] == [
        ("/srv/shared", lab.address("node1")), ("/srv/shared", lab.address("node2"))]
    assert all("root_squash" in e[1].split("(")[1].split(",") for e in exported)
    for node in ("node1", "node2"):  # the client, where a mount needs it (trixie has none)
        assert installed(lab, node, "nfs-common")
        fstab = lab.ssh(node, "findmnt --fstab -n -o SOURCE,FSTYPE /shared").stdout.split()
        assert fstab == ["10.1.10.240:/srv/shared", "nfs"]


def test_bullseye_holds_its_address_through_dhcpcd_after_apply_and_a_reboot(
    mixed: Cluster, first: dict
) -> None:
    lab = mixed.lab

    def wired() -> list[str]:
        shown = json.loads(lab.ssh("node2", "ip -j -4 addr show dev eth0").stdout)
        return [f"{a['local']}/{a['prefixlen']}" for link in shown for a in link["addr_info"]]

    block = lab.ssh("node2", "sed -n '/^# BEGIN picl/,/^# END picl/p' /etc/dhcpcd.conf").stdout
    assert [line for line in block.splitlines() if not line.startswith("#")] == [
        "interface eth0", "static ip_address=10.1.10.242/24", "nogateway"]
    # The address the card had by hand is switched off, not left to merge with picl's.
    conf = lab.ssh("node2", "cat /etc/dhcpcd.conf").stdout
    assert "# picl replaced: interface eth0" in conf.split("# BEGIN picl")[0]
    # NetworkManager left alone, installed and unused, as Raspberry Pi OS bullseye ships it.
    state = lab.ssh("node2", "systemctl is-active dhcpcd NetworkManager", check=False).stdout
    assert state.split() == ["active", "inactive"]
    assert wired() == ["10.1.10.242/24"]
    rebooted = mixed.picl("reboot", "--node", "node2", "--yes")
    assert rebooted.returncode == 0, rebooted.stdout + rebooted.stderr
    assert "Reboot: 1 back, 0 failed" in rebooted.stdout
    assert wired() == ["10.1.10.242/24"]
    assert lab.ssh("node2", "ip -4 route show default").stdout == ""
    assert lab.ssh("node2", "systemctl is-active dhcpcd chrony").stdout.split() == [
        "active", "active"]
    assert mixed.picl("plan", "--detailed-exitcode").returncode == 0
