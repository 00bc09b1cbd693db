"""The exports file as data: every line names its clients, and a share with none is refused.

The spec already refuses a share with no client (tests/spec/test_invalid.py); these specs are
built past validation, as a bug elsewhere could, to show the server never writes such a line.
"""

from __future__ import annotations

import pytest

from picl.deploy import shares
from picl.spec import Cluster
from tests.deploy.conftest import fresh_node, view

# (id, the share's clients, the nodes the cluster keeps)
NO_CLIENT: list[tuple[str, object, tuple[str, ...]]] = [
    ("empty-list", [], ("node0", "node1", "node2")),
    ("only-the-server", ["node0"], ("node0", "node1", "node2")),
    ("server-twice", ["node0", "node0"], ("node0", "node1", "node2")),
    ("all-of-one-node", "all", ("node0",)),
    ("unknown-names", ["node7"], ("node0", "node1", "node2")),
]


def _unchecked(cluster: Cluster, clients: object, nodes: tuple[str, ...]) -> Cluster:
    share = cluster.shares[0].model_copy(update={"clients": clients})
    kept = [n for n in cluster.nodes if n.name in nodes]
    return cluster.model_copy(update={"shares": [share], "nodes": kept})


@pytest.mark.parametrize(("clients", "nodes"), [c[1:] for c in NO_CLIENT],
                         ids=[c[0] for c in NO_CLIENT])
def test_a_share_without_client_is_never_exported(
    cluster: Cluster, clients: object, nodes: tuple[str, ...]
) -> None:
    broken = _unchecked(cluster, clients, nodes)
    with pytest.raises(shares.ExportError, match="no client to export /srv/shared"):
        shares.exports(broken, "node0")
    with pytest.raises(shares.ExportError):
        shares.changes(view(broken, "node0", fresh_node("node0")))


def test_every_exports_line_names_a_client(cluster: Cluster) -> None:
    for clients in (["node1"], ["node0", "node2"], "all"):
        text = shares.exports(_unchecked(cluster, clients, ("node0", "node1", "node2")), "node0")
        assert text is not None
        for line in text.splitlines()[1:]:
            path, *targets = line.split()
            assert path == "/srv/shared" and targets, line
            assert all(t.startswith("10.1.10.") and t.endswith(")") for t in targets), line
