"""Boot target: graphical on the primary in the example, multi-user on headless workers."""

from __future__ import annotations

import posixpath

from picl.deploy.changes import Attribute, Change
from picl.deploy.commands import command, sh
from picl.deploy.view import ClusterFacts, NodeView
from picl.facts.node import Observed, Reads
from picl.spec import Cluster, Node

DEFAULT_TARGET = "/etc/systemd/system/default.target"
VENDOR_DEFAULT_TARGET = "/lib/systemd/system/default.target"  # when the admin set none
READS = Reads(links=(DEFAULT_TARGET, VENDOR_DEFAULT_TARGET))


def reads(cluster: Cluster, node: Node, shared: ClusterFacts) -> Reads:
    return READS


def default_target(observed: Observed) -> str | None:
    """What `systemctl get-default` prints, without its round trip to systemd."""
    link = observed.links.get(DEFAULT_TARGET) or observed.links.get(VENDOR_DEFAULT_TARGET)
    return posixpath.basename(link) if link else None


def changes(view: NodeView) -> list[Change]:
    wanted = f"{view.node.target}.target"
    have = default_target(view.observed)
    if have == wanted:
        return []
    # Only the default changes: the running session is not switched under its user.
    return [Change("target", "update", (Attribute("default", have, wanted),),
                   steps=(sh(command("systemctl", "set-default", wanted)),))]
