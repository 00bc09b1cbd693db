"""The order nodes go down in, and the bounded wait for them, as data."""

from __future__ import annotations

import pytest

from picl.operate import power
from picl.spec import Cluster, Node


def test_workers_go_before_the_primary(cluster: Cluster) -> None:
    nodes = list(reversed(cluster.nodes))
    workers, primary = power.split(cluster, nodes)
    assert [n.name for n in workers] == ["node2", "node1"]
    assert [n.name for n in primary] == ["node0"]
    assert power.split(cluster, [cluster.node("node1")]) == ([cluster.node("node1")], [])


def test_waiting_yields_each_node_as_it_is_done_and_the_rest_at_the_deadline(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(power, "POLL", 0.01)
    looks: dict[str, int] = {}

    def done(node: Node) -> bool:
        looks[node.name] = looks.get(node.name, 0) + 1
        return node.name == "node0" or (node.name == "node1" and looks["node1"] >= 3)

    finished = []
    # node2 never gets done: the wait ends at its deadline, whatever happens.
    for node, ok in power._until(list(cluster.nodes), done, timeout=2.0):
        finished.append((node.name, ok))
    assert finished == [("node0", True), ("node1", True), ("node2", False)]
    assert looks["node0"] == 1 and looks["node1"] == 3 and looks["node2"] >= 3


def test_a_power_event_that_leaves_the_primary_running_is_a_failure() -> None:
    assert power.PowerEvent("node0", "left running", 0.0).failed
    assert power.PowerEvent("node1", "failed", 0.0).failed
    assert not power.PowerEvent("node1", "off", 0.0).failed
    assert not power.PowerEvent("node1", "already off", 0.0).failed


def test_picl_knows_the_node_it_runs_on_by_its_address() -> None:
    # Binding a socket sends nothing: it only asks whether the address is this machine's.
    assert power.is_this_machine(Node(name="here", address="127.0.0.1"))
    assert not power.is_this_machine(Node(name="elsewhere", address="192.0.2.1"))


@pytest.mark.parametrize(("connect", "expected"), [(10, 10.0), (3, 10.0), (150, 150.0)])
def test_a_look_at_a_node_allows_its_connection(connect: int, expected: float) -> None:
    """A node that takes long to answer SSH (an emulated VM) is not taken for one that is off."""
    from picl.transport.connection import Connection

    assert power.probe_timeout(Connection(connect_timeout=connect)) == expected
    assert Connection(connect_timeout=connect).allowing(30) == expected + 20
    assert power.boot_timeout(Connection(connect_timeout=connect)) == expected + 290
