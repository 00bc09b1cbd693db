"""Metrics: Debian's node_exporter on every node, and optionally Prometheus on the primary.

Each listens on its node's wired address only, never on the uplink. Prometheus scrapes the
agent (its own endpoint, reconciler.metrics) and every node's exporter, by name; its retention
keeps the samples to what an SD card spares. The files are Debian's `/etc/default` ones and
the scrape configuration, whole, with a header; the new configuration is checked by promtool
before it is put in place.
"""

from __future__ import annotations

from picl.deploy.changes import Change, text_diff
from picl.deploy.commands import put, sh
from picl.deploy.view import ClusterFacts, NodeView
from picl.facts.node import Observed, Reads
from picl.spec import Cluster, Node

EXPORTER = "prometheus-node-exporter"
SERVER = "prometheus"
EXPORTER_PORT = 9100  # node_exporter's, in Prometheus' default port allocations
SERVER_PORT = 9090
EXPORTER_DEFAULTS = "/etc/default/prometheus-node-exporter"
SERVER_DEFAULTS = "/etc/default/prometheus"
SCRAPE_CONFIG = "/etc/prometheus/prometheus.yml"
HEADER = "# Managed by picl from cluster.toml ([metrics]): edit the spec, not this file.\n"
SCRAPE_INTERVAL = "30s"  # a Pi's exporter and the agent answer in milliseconds; 30s keeps it idle
# Sensors, read on every node for the agent's metrics (by the shell: no process for them).
TEMPERATURE = "/sys/class/thermal/thermal_zone0/temp"  # the SoC's, on a Pi the only zone
# The Raspberry Pi firmware's get_throttled bits (under-voltage, throttling), as vcgencmd shows.
THROTTLED = "/sys/devices/platform/soc/soc:firmware/get_throttled"


def exporting(cluster: Cluster) -> bool:
    return cluster.metrics is not None and cluster.metrics.node_exporter


def serving(cluster: Cluster, node: Node) -> bool:
    """Prometheus runs on this node: the primary, when the spec asks for it."""
    return (cluster.metrics is not None and cluster.metrics.prometheus is not None
            and node.name == cluster.cluster.primary)


def needs(cluster: Cluster, node: Node) -> tuple[str, ...]:
    """The exporter everywhere, the server on the primary."""
    return (*((EXPORTER,) if exporting(cluster) else ()),
            *((SERVER,) if serving(cluster, node) else ()))


def files(cluster: Cluster, node: Node) -> tuple[str, ...]:
    """What the plan reads on `node` for this concern."""
    return (*((EXPORTER_DEFAULTS,) if exporting(cluster) else ()),
            *((SERVER_DEFAULTS, SCRAPE_CONFIG) if serving(cluster, node) else ()))


def reads(cluster: Cluster, node: Node, shared: ClusterFacts) -> Reads:
    """The sensors everywhere; the files this concern writes where it writes them."""
    return Reads(files=files(cluster, node), kernel=(TEMPERATURE, THROTTLED))


def sensors(observed: Observed) -> tuple[float | None, int | None]:
    """(temperature in °C, throttled bits) as read; None for what the board lacks."""
    degrees = (observed.kernel.get(TEMPERATURE) or [""])[0].strip()
    bits = (observed.kernel.get(THROTTLED) or [""])[0].strip()
    temperature = int(degrees) / 1000 if degrees.lstrip("-").isdigit() else None
    try:
        throttled = int(bits, 16) if bits else None
    except ValueError:
        throttled = None
    return temperature, throttled


def exporter_defaults(node: Node) -> str:
    return HEADER + f'ARGS="--web.listen-address={node.address}:{EXPORTER_PORT}"\n'


def server_defaults(cluster: Cluster) -> str:
    assert cluster.metrics is not None and cluster.metrics.prometheus is not None
    prometheus = cluster.metrics.prometheus
    return HEADER + (f'ARGS="--web.listen-address={cluster.primary.address}:{SERVER_PORT} '
                     f"--storage.tsdb.retention.time={prometheus.retention} "
                     f'--storage.tsdb.retention.size={prometheus.retention_size}"\n')


def scrape_config(cluster: Cluster) -> str:
    """Prometheus' configuration: the agent, and every node's exporter by name."""
    assert cluster.metrics is not None
    lines = [HEADER, "global:\n", f"  scrape_interval: {SCRAPE_INTERVAL}\n",
             f"  evaluation_interval: {SCRAPE_INTERVAL}\n", "scrape_configs:\n",
             "  - job_name: picl\n", "    static_configs:\n",
             f"      - targets: ['{cluster.primary.name}:{cluster.metrics.port}']\n"]
    if exporting(cluster):
        lines += ["  - job_name: node\n", "    static_configs:\n"]
        lines += [f"      - targets: ['{node.name}:{EXPORTER_PORT}']\n" for node in cluster.nodes]
    return "".join(lines)


def _file(view: NodeView, path: str, wanted: str, service: str,
          check: str = "") -> list[Change]:
    current = view.observed.file(path)
    if current == wanted:
        return []
    return [Change(f"metrics {path}", "create" if current is None else "update",
                   diff=text_diff(path, current, wanted),
                   steps=(put(path, wanted, check=check), sh(f"systemctl restart {service}")))]


def changes(view: NodeView) -> list[Change]:
    cluster, node = view.cluster, view.node
    found = []
    if exporting(cluster):
        found += _file(view, EXPORTER_DEFAULTS, exporter_defaults(node), EXPORTER)
    if serving(cluster, node):
        found += _file(view, SERVER_DEFAULTS, server_defaults(cluster), SERVER)
        found += _file(view, SCRAPE_CONFIG, scrape_config(cluster), SERVER,
                       check="promtool check config --syntax-only")
    return found
