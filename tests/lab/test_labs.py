"""Whole labs: two of one spec side by side, ten nodes, and nothing left after `down`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from picl import lab as labs
from picl.errors import PiclError
from picl.lab import mirror
from picl.lab import node as nodes
from picl.lab.blueprint import STATE
from picl.spec import load
from tests.conftest import SPEC, Lab, session_lab_name

pytestmark = pytest.mark.lab

TEN = Path(__file__).with_name("ten-nodes.toml")


def leftovers(name: str) -> list[str]:
    """Whatever of lab `name` is still on the machine."""
    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [line for line in netns.splitlines() if line.startswith(f"picl-{name}-")]
    mounts = Path("/proc/mounts").read_text().splitlines()
    found += [line for line in mounts if f"{STATE}/{name}/" in line]
    found += [f"process {p.pid} ({p.kind})" for p in nodes.processes(name)]
    found += [f"apt proxy {pid}" for pid in mirror.proxies(name).values()]
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    found += [line for line in ps.splitlines() if f"{STATE}/{name}/" in line]
    if (STATE / name).exists():
        found.append(str(STATE / name))
    return found


def test_two_labs_of_one_spec_run_side_by_side(lab) -> None:
    other = Lab(name=session_lab_name("b"), spec=SPEC)
    try:
        labs.up(load(SPEC), other.name)
        address = lab.address("node0")
        assert other.address("node0") == address
        # Same address, two machines: each lab's ssh reaches its own node0.
        key_a = lab.exec(["sh", "-c", f"ssh {address} cat /etc/ssh/ssh_host_ed25519_key.pub"])
        key_b = other.exec(["sh", "-c", f"ssh {address} cat /etc/ssh/ssh_host_ed25519_key.pub"])
        assert key_a.stdout != key_b.stdout
        other.ssh("node2", f"ping -c 1 -W 5 {address}")
    finally:
        labs.down(other.name)
    assert leftovers(other.name) == []
    lab.wait_ssh("node0", timeout=30)  # the first lab did not notice


def test_ten_nodes_come_up_and_down_leaves_nothing(lab_host: None) -> None:
    ten = Lab(name=session_lab_name("ten"), spec=TEN)
    try:
        result = ten.picl("lab", "up")
        assert result.returncode == 0, result.stderr
        status = labs.status(ten.name)
        assert len(status.nodes) == 10 and all(n.running and n.ssh for n in status.nodes)
        ten.ssh("node9", "ping -c 1 -W 5 " + ten.address("node0"))
    finally:
        result = ten.picl("lab", "down")
    assert result.returncode == 0, result.stderr
    assert leftovers(ten.name) == []


def test_a_crashed_lab_is_found_and_removed(lab_host: None) -> None:
    name = session_lab_name("crash")
    labs.up(load(SPEC), name)
    # picl and the supervisors die (say, a power cut of the operator's session): nspawn with
    # them, and the containers' systemd live on, orphans. `down --all` starts from this list.
    nodes.cut_power([p for p in nodes.processes(name) if p.kind != "container"])
    assert [p for p in nodes.processes(name) if p.init]
    assert name in labs.labs_on_host()
    assert labs.down(name) is True
    assert leftovers(name) == []
    assert name not in labs.labs_on_host()


def test_up_refuses_to_rewire_a_running_lab(lab, tmp_path: Path) -> None:
    moved = tmp_path / "cluster.toml"
    moved.write_text(SPEC.read_text().replace('"10.1.10.241"', '"10.1.10.99"'))
    with pytest.raises(PiclError, match="another network .nodes node1 moved"):
        labs.up(load(moved), lab.name)
    lab.ssh("node1", "true")  # nothing was touched
