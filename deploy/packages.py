"""Packages: `packages.all` on every node plus the node's own, installed with apt."""

from __future__ import annotations

from picl.deploy.changes import Change, Step
from picl.deploy.commands import install_packages
from picl.deploy.view import NodeView


def wanted(view: NodeView) -> list[str]:
    return list(dict.fromkeys([*view.cluster.packages.all, *view.node.packages]))


def changes(view: NodeView) -> list[Change]:
    missing = [p for p in wanted(view) if not view.observed.packages.get(p)]
    if not missing:
        return []
    # One apt run installs them all: the changes share the step, and apply runs it once.
    step = Step(install_packages, {"packages": missing})
    return [Change(f"package {name}", "create", steps=(step,)) for name in missing]
