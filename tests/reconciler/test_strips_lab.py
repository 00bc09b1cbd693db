"""The agent's LED records written to lab nodes over SSH, all at once, each node failing alone."""

from __future__ import annotations

import json
import sys

import pytest

from picl.reconciler.leds.record import STATE_FILE, Record
from tests.conftest import Lab

pytestmark = pytest.mark.lab

# Run inside the lab: one record per node, written as the agent's painter writes them; a node
# named in argv[2:] is looked for at an address of the lab's subnet where no node is.
WRITE = """\
import json, sys
from picl.reconciler.leds.record import Record
from picl.reconciler.strips import write
from picl.spec import load
from picl.transport.connection import Connection

cluster = load(sys.argv[1], with_secrets=False)
gone = [n.model_copy(update={"address": "10.1.10.250"}) if n.name in sys.argv[2:] else n
        for n in cluster.nodes]
cluster = cluster.model_copy(update={"nodes": gone})
chosen = {n.name: Record("converged" if n.name != "node1" else "failed", (), 2e9)
          for n in cluster.nodes}
print(json.dumps(write(cluster, chosen, Connection.from_environ())))
"""


def written(lab: Lab, *gone: str) -> dict[str, str]:
    """Each node's boot id, as `write` returns them."""
    return json.loads(lab.exec([sys.executable, "-c", WRITE, str(lab.spec), *gone]).stdout)


def test_each_node_takes_its_record_and_answers_its_boot_id(lab: Lab) -> None:
    boots = written(lab)
    for node in ("node0", "node1", "node2"):
        assert boots[node] == lab.ssh(node, "cat /proc/sys/kernel/random/boot_id").stdout.strip()
        record = Record.from_json(lab.ssh(node, f"cat {STATE_FILE}").stdout)
        assert record.state == ("failed" if node == "node1" else "converged")


def test_a_node_that_does_not_answer_fails_alone(lab: Lab) -> None:
    assert sorted(written(lab, "node2")) == ["node0", "node1"]
