"""Managed files: content (inline or from the repository), owner, group and mode."""

from __future__ import annotations

from picl.deploy.changes import Change, attributes, text_diff
from picl.deploy.commands import put
from picl.deploy.view import NodeView
from picl.spec import ManagedFile


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
