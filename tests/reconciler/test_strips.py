"""What each node's strip is told, from the agent's status, as data; and the write itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from picl.reconciler import status as st
from picl.reconciler.leds.record import Record, read
from picl.reconciler.status import NodeStatus, Status
from picl.reconciler.strips import node_states, rebooted, records, write_command

NAMES = ["node0", "node1", "node2"]
NODES = (NodeStatus("node0", "converged"), NodeStatus("node1", "applying"),
         NodeStatus("node2", "unreachable"))
T0 = 1_800_000_000.0

STATES = [
    (Status(), ["unknown", "unknown", "unknown"]),
    (Status(nodes=NODES), ["converged", "applying", "unreachable"]),
    (Status(nodes=NODES[:1]), ["converged", "unknown", "unknown"]),
    (st.stalled(Status(nodes=NODES), "InvalidSpec", "bad", T0), ["stalled"] * 3),
    (st.suspend(Status(nodes=NODES), "me", T0), ["suspended"] * 3),
    (st.suspend(st.stalled(Status(nodes=NODES), "InvalidSpec", "bad", T0), "me", T0),
     ["suspended"] * 3),
]


@pytest.mark.parametrize(("status", "expected"), STATES)
def test_node_states(status: Status, expected: list[str]) -> None:
    assert node_states(status, NAMES) == expected


def test_the_primary_shows_every_node() -> None:
    chosen = records(Status(nodes=NODES), NAMES, "node0", T0 + 60)
    assert chosen == {
        "node0": Record("converged", ("converged", "applying", "unreachable"), T0 + 60),
        "node1": Record("applying", (), T0 + 60),
        "node2": Record("unreachable", (), T0 + 60),
    }


def test_the_write_command_replaces_the_record(tmp_path: Path) -> None:
    path = tmp_path / "run" / "picl" / "leds.json"
    record = Record("stalled", ("stalled", "stalled"), T0)
    proc = subprocess.run(["sh", "-c", write_command(record, str(path))],
                          capture_output=True, text=True, check=True)
    assert read(path) == record
    assert len(proc.stdout.strip()) == 36  # the node's boot id
    assert [p.name for p in path.parent.iterdir()] == ["leds.json"]


def test_rebooted() -> None:
    before = {"node0": "a", "node1": "b"}
    assert list(rebooted(before, {"node0": "a", "node1": "c", "node2": "d"})) == ["node1"]
