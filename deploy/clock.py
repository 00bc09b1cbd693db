"""Time: the timezone, and chrony: the primary syncs from the pools and serves the cluster.

The boards have no RTC. With `serve = true` the primary answers the cluster subnet and keeps
serving from its own clock (`local stratum 10`) when the uplink is gone, so a cluster carried
offline keeps one time. The others sync from the primary first, the pools after.
"""

from __future__ import annotations

from picl.deploy.changes import Attribute, Change, text_diff
from picl.deploy.commands import command, put, sh
from picl.deploy.view import ClusterFacts, NodeView
from picl.facts.node import Observed, Reads
from picl.spec import Cluster, Node

CHRONY_CONF = "/etc/chrony/chrony.conf"
LOCALTIME = "/etc/localtime"
ZONEINFO = "/usr/share/zoneinfo/"
READS = Reads(files=(CHRONY_CONF,), links=(LOCALTIME,))
LOCALTIME_NEW = "/etc/.picl-localtime"
HEADER = "# Managed by picl from cluster.toml ([time]): edit the spec, not this file.\n"
# Debian's own settings, kept so chrony behaves as packaged.
DEBIAN_DEFAULTS = """\
confdir /etc/chrony/conf.d
sourcedir /run/chrony-dhcp
sourcedir /etc/chrony/sources.d
keyfile /etc/chrony/chrony.keys
driftfile /var/lib/chrony/chrony.drift
ntsdumpdir /var/lib/chrony
logdir /var/log/chrony
maxupdateskew 100.0
rtcsync
makestep 1 3
leapsectz right/UTC
"""


def needs(cluster: Cluster, node: Node) -> tuple[str, ...]:
    """chrony, on every node: it replaces the image's systemd-timesyncd (apt removes it)."""
    return ("chrony",)


def reads(cluster: Cluster, node: Node, shared: ClusterFacts) -> Reads:
    return READS


def timezone(observed: Observed) -> str | None:
    """The zone /etc/localtime names, None when it names none."""
    link = observed.links.get(LOCALTIME) or ""
    return link.split("zoneinfo/", 1)[1] if "zoneinfo/" in link else None


def chrony_conf(view: NodeView) -> str:
    time = view.cluster.time
    lines = [HEADER]
    if view.is_primary or not time.serve:
        lines += [f"pool {server} iburst\n" for server in time.servers]
    else:
        lines.append(f"server {view.cluster.primary.address} iburst prefer\n")
        lines += [f"pool {server} iburst\n" for server in time.servers]
    if view.is_primary and time.serve:
        lines.append(f"allow {view.cluster.network.subnet}\n")
        lines.append("local stratum 10\n")
    return "".join(lines) + "\n" + DEBIAN_DEFAULTS


def changes(view: NodeView) -> list[Change]:
    found = []
    zone = view.cluster.cluster.timezone
    have = timezone(view.observed)
    if have != zone:
        found.append(Change(
            "timezone", "update", (Attribute("timezone", have, zone),),
            # A symlink made beside it and renamed: /etc/localtime is never missing.
            steps=(sh(command("ln", "-sfn", ZONEINFO + zone, LOCALTIME_NEW),
                      command("mv", "-fT", LOCALTIME_NEW, LOCALTIME)),
                   put("/etc/timezone", zone + "\n")),
        ))
    current = view.observed.file(CHRONY_CONF)
    wanted = chrony_conf(view)
    if current != wanted:
        found.append(Change(
            "chrony", "create" if current is None else "update",
            diff=text_diff(CHRONY_CONF, current, wanted),
            # try-restart: a chrony the node does not run (no CAP_SYS_TIME) is left stopped.
            steps=(put(CHRONY_CONF, wanted), sh("systemctl try-restart chrony")),
        ))
    return found
