"""Names: each node's hostname, and every node in /etc/hosts (in a block picl owns)."""

from __future__ import annotations

from picl.deploy.changes import Attribute, Change, block_lines, text_diff, with_block
from picl.deploy.commands import command, put, sh
from picl.deploy.view import NodeView

HOSTS = "/etc/hosts"
HOSTNAME = "/etc/hostname"


def hosts_lines(view: NodeView) -> list[str]:
    domain = view.cluster.cluster.domain
    return [f"{n.address}\t{n.name}.{domain} {n.name}" for n in view.cluster.nodes]


def changes(view: NodeView) -> list[Change]:
    found = []
    name = view.node.name
    written = (view.observed.file(HOSTNAME) or "").strip()
    live = view.observed.live_hostname
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
