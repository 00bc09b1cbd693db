"""Power and boot: a reboot inside a node, a power cut and a start, a second `up`."""

from __future__ import annotations

import subprocess
import time

import pytest

from picl import lab as labs
from picl.lab import node as nodes
from picl.lab.blueprint import NETNS

pytestmark = pytest.mark.lab

# /run is a fresh tmpfs at every boot; /root is on the node's disk (its overlay).
BOOTED = "test -e /run/picl-test-booted"
MARK = "touch /run/picl-test-booted && echo kept > /root/picl-test-disk && sync"


def _booted_again(lab, node: str) -> bool:
    return lab.ssh(node, BOOTED, check=False).returncode != 0


def test_reboot_inside_a_node_brings_it_back_with_its_files(lab) -> None:
    lab.ssh("node2", MARK)
    lab.ssh("node2", "systemctl reboot", check=False)  # the connection may go down with it
    # Between `systemctl reboot` and the reboot sshd may still answer: wait for the new boot.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        lab.wait_ssh("node2")
        if _booted_again(lab, "node2"):
            break
        time.sleep(0.5)
    assert _booted_again(lab, "node2")
    assert lab.ssh("node2", "cat /root/picl-test-disk").stdout == "kept\n"
    assert lab.ssh("node2", "systemctl is-system-running --wait", check=False).stdout.strip() in (
        "running",
        "degraded",  # this kernel has no nfsd: nfs-server's mounts fail in every node
    )


def test_kill_cuts_the_power_and_start_boots_the_node_with_its_disk(lab) -> None:
    lab.ssh("node1", MARK)
    assert labs.kill(lab.name, "node1") is True
    assert not [p for p in nodes.processes(lab.name) if p.node == "node1"]
    assert lab.ssh("node1", "true", check=False, timeout=60).returncode == 255
    # Off is silent on the wire, as a board without power: no ping, no TCP reset.
    assert lab.ssh("node0", f"ping -c 1 -W 2 {lab.address('node1')}", check=False).returncode != 0
    status = labs.status(lab.name)
    assert [n.running for n in status.nodes] == [True, False, True]
    assert labs.kill(lab.name, "node1") is False  # already off

    result = lab.picl("lab", "start", "node1")
    assert result.returncode == 0, result.stderr
    assert _booted_again(lab, "node1")
    assert lab.ssh("node1", "cat /root/picl-test-disk").stdout == "kept\n"


def test_a_second_up_keeps_running_nodes_and_boots_missing_ones(lab) -> None:
    for node in ("node0", "node2"):
        lab.ssh(node, "touch /run/picl-test-booted")
    labs.kill(lab.name, "node1")
    result = lab.picl("lab", "up")
    assert result.returncode == 0, result.stderr
    assert not _booted_again(lab, "node0") and not _booted_again(lab, "node2")
    assert lab.ssh("node1", "hostname").stdout.strip() == "node1"


def test_up_after_the_host_rebooted_boots_the_nodes_with_their_disks(lab) -> None:
    for node in lab.blueprint.nodes:
        lab.ssh(node.name, MARK)
    # What a reboot of the host leaves: the lab's state, and nothing running, mounted or wired;
    # where /run is on disk, namespace files with no namespace behind them.
    blueprint = lab.blueprint
    nodes.cut_power(nodes.processes(lab.name))
    nodes.unmount_disks(blueprint.dir)
    for namespace in [blueprint.namespace, *(n.namespace for n in blueprint.nodes)]:
        subprocess.run(["ip", "netns", "delete", namespace], check=True)
        (NETNS / namespace).touch()

    result = lab.picl("lab", "up")
    assert result.returncode == 0, result.stderr
    for node in blueprint.nodes:
        assert _booted_again(lab, node.name)
        assert lab.ssh(node.name, "cat /root/picl-test-disk").stdout == "kept\n"
