"""Managed files: content (inline or from the repository), owner, group and mode."""

from __future__ import annotations

from picl.deploy.changes import Change, attributes, text_diff
from picl.deploy.commands import put
from picl.deploy.view import ClusterFacts, NodeView
from picl.facts.node import Reads
from picl.spec import Cluster, ManagedFile, Node


def reads(cluster: Cluster, node: Node, shared: ClusterFacts) -> Reads:
    """The node's managed files, content and mode."""
    return Reads(files=tuple(f.path for f in cluster.files if node in cluster.selected(f.nodes)))


def content(view: NodeView, managed: ManagedFile) -> str:
    if managed.content is not None:
        return managed.content
    assert managed.source is not None  # the spec requires one of the two
    return (view.shared.spec_dir / managed.source).read_text()


def changes(view: NodeView) -> list[Change]:
    found = []
    for managed in view.cluster.files:
        if view.node not in view.cluster.selected(managed.nodes):
            continue
        wanted = content(view, managed)
        current = view.observed.file(managed.path)
        stat = view.observed.stats.get(managed.path)
        before = {"owner": stat.owner, "group": stat.group, "mode": stat.mode} if stat else {}
        after = {"owner": managed.owner, "group": managed.group, "mode": managed.mode}
        changed = attributes(before, after) if current is not None else ()
        if current == wanted and not changed:
            continue
        found.append(Change(
            f"file {managed.path}",
            "create" if current is None else "update",
            changed,
            diff=text_diff(managed.path, current, wanted) if current != wanted else "",
            steps=(put(managed.path, wanted, managed.owner, managed.group, managed.mode),),
        ))
    return found
