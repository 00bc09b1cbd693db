"""Desired vs observed, per node: the changes that converge it, in the order apply runs them.

Pure: facts in, changes out. Reading the nodes and running the steps is `converge`'s job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from picl.deploy import (
    boot,
    clock,
    files,
    leds,
    mounts,
    mpi,
    names,
    network,
    packages,
    shares,
    ssh_access,
    users,
)
from picl.deploy.changes import Change, NodePlan
from picl.deploy.view import ClusterFacts, NodeView
from picl.facts.node import Observed, Probe
from picl.spec import Cluster, Node

# What each concern needs installed, by the concern's name in the plan ("package chrony (for
# time)"). Installed before every concern's changes.
NEEDS: tuple[tuple[str, Callable[[Cluster, Node], tuple[str, ...]]], ...] = (
    ("users", users.needs),
    ("ssh", ssh_access.needs),
    ("time", clock.needs),
    ("shares", shares.needs),
    ("mounts", mounts.needs),
    ("mpi", mpi.needs),
)
# Users first (files are owned by them), then their keys, then the rest of the node.
CONCERNS: tuple[Callable[[NodeView], list[Change]], ...] = (
    users.changes,
    ssh_access.changes,
    names.changes,
    boot.changes,
    clock.changes,
    files.changes,
    shares.changes,
    mpi.changes,
    # Changes that can cut picl off: apply runs them after the others, under confirm-or-revert.
    mounts.changes,
    network.changes,
    leds.changes,  # last: it shows the state of everything above
)


def needed(cluster: Cluster, node: Node) -> dict[str, str]:
    """The packages the concerns need on `node`, each with the first concern that needs it."""
    found: dict[str, str] = {}
    for concern, needs in NEEDS:
        for package in needs(cluster, node):
            found.setdefault(package, concern)
    return found


def probe(cluster: Cluster, node: Node, shared: ClusterFacts | None = None) -> Probe:
    """What to read on `node` for this spec."""
    led_files = tuple(shared.led_service) if shared and node.leds == "blinkt" else ()
    mpi_files = mpi.FILES if mpi.takes_part(cluster, node) else ()
    return Probe(
        users=tuple(dict.fromkeys(
            [u.name for u in cluster.users] + [u.rename_from for u in cluster.users
                                               if u.rename_from])),
        files=tuple(dict.fromkeys(
            [f.path for f in cluster.files if node in cluster.selected(f.nodes)]
            + [*led_files, *mpi_files, leds.UNIT_PATH, *network.FILES])),
        directories=tuple(s.export for s in cluster.shares if s.server == node.name),
        packages=tuple(dict.fromkeys([*needed(cluster, node), *cluster.packages.all,
                                      *node.packages])),
        units=(leds.UNIT, *network.UNITS),
        exists=network.EXISTS,
        secret_files=network.SECRET_FILES,
        versions=(mpi.PACKAGE,) if mpi.takes_part(cluster, node) else (),
    )


def plan_node(cluster: Cluster, node: Node, observed: Observed, shared: ClusterFacts) -> NodePlan:
    view = NodeView(cluster, node, observed, shared)
    # Packages first: every concern below may need one of them.
    changes = packages.changes(view, needed(cluster, node))
    for concern in CONCERNS:
        changes += concern(view)
    return NodePlan(node.name, changes)


@dataclass
class Plan:
    """The whole cluster's plan: one NodePlan per selected node, and what the run noticed."""

    nodes: list[NodePlan] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return sum(len(n.changes) for n in self.nodes)

    @property
    def failed(self) -> list[NodePlan]:
        return [n for n in self.nodes if n.error]

    @property
    def blocked(self) -> int:
        """Changes apply will not make (each says why): they fail their node."""
        return sum(len(n.blocked) for n in self.nodes)

    def summary(self) -> dict[str, int]:
        total = {"create": 0, "update": 0, "remove": 0}
        for node in self.nodes:
            for action, count in node.counts.items():
                total[action] += count
        return {**total, "blocked": self.blocked}
