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


def wanted(view: NodeView) -> list[str]:
    return list(dict.fromkeys([*view.cluster.packages.all, *view.node.packages]))


def changes(view: NodeView, needed: Mapping[str, str]) -> list[Change]:
    """Install what is missing: `needed` maps a package to the concern that needs it."""
    missing = [p for p in dict.fromkeys([*needed, *wanted(view)])
               if not view.observed.packages.get(p)]
    if not missing:
        return []
    # One apt run installs them all: the changes share the step, and apply runs it once.
    step = Step(install_packages, {"packages": missing})
    return [Change(f"package {name} (for {needed[name]})" if name in needed else f"package {name}",
                   "create", steps=(step,)) for name in missing]
