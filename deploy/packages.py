"""Packages: what the other concerns need, then `packages.all` and the node's own, with apt.

A freshly flashed Raspberry Pi OS Lite has no chrony, no NFS server (trixie: no NFS client
either) and no git: each concern says what it needs (`needs(cluster, node)`), and they are
installed first, in one apt run with the spec's own, so an offline node fails before any
service is half-configured.
"""

from __future__ import annotations

from collections.abc import Mapping

from picl.deploy.changes import Change, Step
from picl.deploy.commands import install_packages
from picl.deploy.view import NodeView
from picl.facts.node import Reads
from picl.spec import Cluster, Node


def wanted(cluster: Cluster, node: Node, needed: Mapping[str, str]) -> list[str]:
    """What the concerns need, then `packages.all` and the node's own."""
    return list(dict.fromkeys([*needed, *cluster.packages.all, *node.packages]))


def reads(cluster: Cluster, node: Node, needed: Mapping[str, str]) -> Reads:
    """Whether each package is installed."""
    return Reads(packages=tuple(wanted(cluster, node, needed)))


def changes(view: NodeView, needed: Mapping[str, str]) -> list[Change]:
    """Install what is missing: `needed` maps a package to the concern that needs it."""
    missing = [p for p in wanted(view.cluster, view.node, needed)
               if not view.observed.packages.get(p)]
    if not missing:
        return []
    # One apt run installs them all: the changes share the step, and apply runs it once.
    step = Step(install_packages, {"packages": missing})
    return [Change(f"package {name} (for {needed[name]})" if name in needed else f"package {name}",
                   "create", steps=(step,)) for name in missing]
