"""The options several commands share, defined once, and what --node selects."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from picl.errors import PiclError

if TYPE_CHECKING:
    from picl.cli.env import Env
    from picl.spec import Cluster, Node

node_option = click.option("--node", "nodes", multiple=True, metavar="N",
                           help="Only this node (repeatable).")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="One JSON document on stdout, nothing else there.")


def selected_nodes(env: Env, names: tuple[str, ...], cluster: Cluster | None = None) -> list[Node]:
    """The nodes of `cluster` (the spec without secrets by default) named by --node, all of
    them without it, in spec order; a name that is no node is an error naming the spec."""
    cluster = cluster or env.spec
    known = [n.name for n in cluster.nodes]
    for name in names:
        if name not in known:
            raise PiclError(f"--node {name}: not a node of {env.spec_path} ({', '.join(known)})")
    return [n for n in cluster.nodes if not names or n.name in names]
