"""Desired vs observed, per node: the changes that converge it, in the order apply runs them.

Pure: facts in, changes out. Reading the nodes and running the steps is `converge`'s job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from picl.deploy import (
    boot,
    clock,
    files,
    leds,
    metrics,
    mounts,
    mpi,
    names,
    network,
    packages,
    shares,
    slurm,
    ssh_access,
    users,
)
from picl.deploy.changes import Change, NodePlan
from picl.deploy.view import ClusterFacts, NodeView
from picl.facts.node import Observed, Reads, merged
from picl.spec import Cluster, Node


class Concern(Protocol):
    """A concern module: what it reads on a node, and the changes it makes from that."""

    def reads(self, cluster: Cluster, node: Node, shared: ClusterFacts) -> Reads: ...

    def changes(self, view: NodeView) -> list[Change]: ...


# What each concern needs installed, by the concern's name in the plan ("package chrony (for
# time)"). Installed before every concern's changes.
NEEDS: tuple[tuple[str, Callable[[Cluster, Node], tuple[str, ...]]], ...] = (
    ("users", users.needs),
    ("ssh", ssh_access.needs),
    ("time", clock.needs),
    ("shares", shares.needs),
    ("mounts", mounts.needs),
    ("mpi", mpi.needs),
    ("metrics", metrics.needs),
    ("slurm", slurm.needs),
)
# Users first (files are owned by them), then their keys, then the rest of the node.
CONCERNS: tuple[Concern, ...] = (
    users,
    ssh_access,
    names,
    boot,
    clock,
    files,
    shares,
    mpi,
    metrics,
    slurm,
    # Changes that can cut picl off: apply runs them after the others, under confirm-or-revert.
    mounts,
    network,
    leds,  # last: it shows the state of everything above
)


def needed(cluster: Cluster, node: Node) -> dict[str, str]:
    """The packages the concerns need on `node`, each with the first concern that needs it."""
    found: dict[str, str] = {}
    for concern, needs in NEEDS:
        for package in needs(cluster, node):
            found.setdefault(package, concern)
    return found


def reads(cluster: Cluster, node: Node, shared: ClusterFacts | None = None) -> Reads:
    """What to read on `node` for this spec: every concern's declaration, in one read."""
    shared = shared or ClusterFacts()
    return merged([packages.reads(cluster, node, needed(cluster, node)),
                   *(concern.reads(cluster, node, shared) for concern in CONCERNS)])


def plan_node(cluster: Cluster, node: Node, observed: Observed, shared: ClusterFacts) -> NodePlan:
    view = NodeView(cluster, node, observed, shared)
    # Packages first: every concern below may need one of them.
    changes = packages.changes(view, needed(cluster, node))
    for concern in CONCERNS:
        changes += concern.changes(view)
    return NodePlan(node.name, changes)


@dataclass
class Plan:
    """The whole cluster's plan: one NodePlan per selected node, and what the run noticed."""

    nodes: list[NodePlan] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # node -> (temperature °C, throttled bits), from the same read: the agent's metrics show them.
    sensors: dict[str, tuple[float | None, int | None]] = field(default_factory=dict)

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
