"""NFS, server side: the primary exports each share to the cluster's addresses only.

Client mounts go through fstab and its safe editing, not here.
"""

from __future__ import annotations

from picl.deploy.changes import Attribute, Change, text_diff
from picl.deploy.commands import command, put, sh
from picl.deploy.view import ClusterFacts, NodeView
from picl.errors import PiclError
from picl.facts.node import Reads
from picl.spec import Cluster, Node, Share

EXPORTS = "/etc/exports.d/picl.exports"
HEADER = "# Managed by picl from cluster.toml ([[shares]]): edit the spec, not this file.\n"
DEFAULT_OPTIONS = ("rw", "sync", "no_subtree_check", "root_squash")
# Options that replace each other: a spec's `ro` drops the default `rw`.
OPPOSITES = {
    "rw": "ro", "ro": "rw", "sync": "async", "async": "sync",
    "root_squash": "no_root_squash", "no_root_squash": "root_squash",
    "subtree_check": "no_subtree_check", "no_subtree_check": "subtree_check",
}


class ExportError(PiclError):
    """A share the server must not export as the spec gives it."""


def export_options(share: Share) -> str:
    options = list(DEFAULT_OPTIONS)
    for option in share.options.split(","):
        if option in options:
            continue
        opposite = OPPOSITES.get(option)
        if opposite in options:
            options[options.index(opposite)] = option
        else:
            options.append(option)
    return ",".join(options)


def clients(cluster: Cluster, share: Share) -> list[str]:
    """The addresses a share is exported to: its clients' but the server's own, never none.

    nfs-utils reads an exports line without a client as "every host"; the spec refuses such a
    share, and this refuses it again rather than ever write one.
    """
    nodes = cluster.selected(share.clients)
    addresses = [str(n.address) for n in nodes if n.name != share.server]
    if not addresses:
        raise ExportError(
            f"share {share.name!r}: no client to export {share.export} to; an exports line "
            "without one would open it to every host"
        )
    return addresses


def exports(cluster: Cluster, server: str) -> str | None:
    """The exports file of a node, or None when it serves no share."""
    served = [s for s in cluster.shares if s.server == server]
    if not served:
        return None
    lines = [HEADER]
    for share in served:
        options = export_options(share)
        targets = " ".join(f"{address}({options})" for address in clients(cluster, share))
        lines.append(f"{share.export} {targets}\n")
    return "".join(lines)


def owner_ids(cluster: Cluster, share: Share) -> tuple[int, int]:
    """The exported directory's owner: the share's, else the first personal user, else root."""
    users = [u for u in cluster.users if u.name == share.owner] or [
        u for u in cluster.users if u.uid >= 1000
    ]
    return (users[0].uid, users[0].primary_gid) if users else (0, 0)


def reads(cluster: Cluster, node: Node, shared: ClusterFacts) -> Reads:
    """The exports file, and the owner of each directory the node exports."""
    return Reads(files=(EXPORTS,),
                 stats=tuple(s.export for s in cluster.shares if s.server == node.name))


def needs(cluster: Cluster, node: Node) -> tuple[str, ...]:
    """The NFS server, on a node that exports a share (a stock image has only the client)."""
    serves = any(s.server == node.name for s in cluster.shares)
    return ("nfs-kernel-server",) if serves else ()


def changes(view: NodeView) -> list[Change]:
    found = []
    for share in view.cluster.shares:
        if share.server != view.node.name:
            continue
        uid, gid = owner_ids(view.cluster, share)
        stat = view.observed.stats.get(share.export)
        if stat is None or (stat.uid, stat.gid) != (uid, gid):
            found.append(Change(
                f"export_dir {share.export}", "create" if stat is None else "update",
                (Attribute("owner", f"{stat.uid}:{stat.gid}" if stat else None, f"{uid}:{gid}"),),
                steps=(sh(command("install", "-d", "-o", str(uid), "-g", str(gid),
                                  share.export)),),
            ))
    wanted = exports(view.cluster, view.node.name)
    current = view.observed.file(EXPORTS)
    if wanted is not None and current != wanted:
        found.append(Change(
            "exports", "create" if current is None else "update",
            diff=text_diff(EXPORTS, current, wanted),
            steps=(put(EXPORTS, wanted), sh("exportfs -ra")),
        ))
    return found
