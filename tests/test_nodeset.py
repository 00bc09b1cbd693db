"""Node names and outputs folded as clush shows them, as data."""

from __future__ import annotations

import pytest

from picl.cli.nodeset import folded, node_set
from picl.transport.remote import Reply


@pytest.mark.parametrize(("names", "folded_names"), [
    (["node0"], "node0"),
    (["node0", "node1", "node2"], "node[0-2]"),
    (["node2", "node0", "node1"], "node[0-2]"),
    (["node0", "node1", "node2", "node5"], "node[0-2,5]"),
    (["node1", "node3"], "node[1,3]"),
    (["node08", "node09", "node10"], "node[08-10]"),
    (["node8", "node9", "node10"], "node[8-10]"),
    (["node9", "node010"], "node[9,010]"),  # widths differ: not one range
    (["pi1", "node1", "node2"], "pi1,node[1-2]"),
    (["rack1-pi1", "rack1-pi2", "rack2-pi1"], "rack1-pi[1-2],rack2-pi1"),
    (["primary", "node1"], "node1,primary"),
    ([], ""),
])
def test_node_names_fold_as_clush_does(names, folded_names) -> None:
    assert node_set(names) == folded_names


def test_identical_outputs_are_folded_in_the_order_first_seen() -> None:
    replies = [
        Reply("node0", 0, "Linux 6.1\n"),
        Reply("node1", 1, "", "grep: /x: No such file\n"),
        Reply("node2", 0, "Linux 6.1\n"),
        Reply("node3", 1, "", "grep: /x: No such file\n"),
        Reply("node4", None, error="no answer within 5s"),
    ]
    assert folded(replies) == [
        (["node0", "node2"], "Linux 6.1\n"),
        (["node1", "node3"], "grep: /x: No such file\n"),
        (["node4"], ""),
    ]
