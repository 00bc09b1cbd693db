"""Names: each node's hostname, and every node in /etc/hosts (in a block picl owns)."""

from __future__ import annotations

from picl.deploy.changes import Attribute, Change, block_lines, text_diff, with_block
from picl.deploy.commands import command, put, sh
from picl.deploy.view import ClusterFacts, NodeView
from picl.facts.node import Reads
from picl.spec import Cluster, Node

HOSTS = "/etc/hosts"
HOSTNAME = "/etc/hostname"
LIVE_HOSTNAME = "/proc/sys/kernel/hostname"  # what `hostname` prints
READS = Reads(files=(HOSTNAME, HOSTS), kernel=(LIVE_HOSTNAME,))


def reads(cluster: Cluster, node: Node, shared: ClusterFacts) -> Reads:
    return READS


def hosts_lines(view: NodeView) -> list[str]:
    domain = view.cluster.cluster.domain
    return [f"{n.address}\t{n.name}.{domain} {n.name}" for n in view.cluster.nodes]


def changes(view: NodeView) -> list[Change]:
    found = []
    name = view.node.name
    written = (view.observed.file(HOSTNAME) or "").strip()
    live = "".join(view.observed.kernel.get(LIVE_HOSTNAME, [])[:1])
    if written != name or live != name:
        found.append(Change(
            "hostname", "update", (Attribute("hostname", written or live or None, name),),
            steps=(put(HOSTNAME, name + "\n"), sh(command("hostname", name))),
        ))
    current = view.observed.file(HOSTS)
    wanted = hosts_lines(view)
    if block_lines(current) != wanted:
        text = with_block(current, wanted)
        found.append(Change("hosts", "update", diff=text_diff(HOSTS, current, text),
                            steps=(put(HOSTS, text),)))
    return found
