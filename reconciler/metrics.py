"""The agent's metrics, in Prometheus' text format over HTTP, on the primary's wired address.

The gauges are read from the agent's status when Prometheus scrapes (nothing is kept twice);
the cycles' count and durations are the only values kept here, updated as each cycle ends.
The names are a contract (dashboards and alerts use them): docs/metrics.md lists them.
The server waits in one thread that wakes every few seconds only to notice it must stop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    make_wsgi_app,
)
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from picl.reconciler import status as st

log = logging.getLogger(__name__)

PATH = "/metrics"
# A Pi's no-op cycle takes about a second, a first converge minutes (apt).
BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)
SUFFIXES = {"counter": ("_total",), "info": ("_info",),
            "histogram": ("_bucket", "_sum", "_count")}
POLL = 10.0  # seconds between the server's looks at whether to stop: idle costs nothing more


def url(address: str, port: int) -> str:
    return f"http://{address}:{port}{PATH}"


def pending_changes(node: st.NodeStatus) -> int:
    """Changes the node still needs: what report mode found, or an apply did not make."""
    return len(node.changes) if node.state in ("drifted", "applying", "failed") else 0


def throttled(bits: int | None) -> float | None:
    """1 when the firmware says the board is under-voltage or throttled now (bits 0-3)."""
    return None if bits is None else float(bool(bits & 0xF))


class StatusCollector(Collector):
    """The gauges, from the agent's status as it is at the scrape."""

    def __init__(self, status: Callable[[], st.Status]):
        self.status = status

    def collect(self) -> Iterator[Metric]:
        status = self.status()
        info = InfoMetricFamily("picl_revision", "The revision the cluster is at",
                                labels=["branch", "revision"])
        info.add_metric([status.branch, status.revision.applied or ""], {})
        yield info
        stalled = status.condition(st.STALLED).status == "True"
        for name, text, value in (
            ("picl_ready", "1 when every node matches the applied revision", status.ready),
            ("picl_stalled", "1 when the newest commit cannot be applied", stalled),
            ("picl_suspended", "1 while the agent is suspended", status.suspended is not None),
        ):
            yield GaugeMetricFamily(name, text, value=float(value))
        applied = GaugeMetricFamily("picl_last_applied_timestamp_seconds",
                                    "When a cycle last left every node at the applied revision")
        if status.applied_at is not None:
            applied.add_metric([], status.applied_at)
        yield applied
        per_node = {
            "reachable": GaugeMetricFamily("picl_node_reachable",
                                           "1 when the last cycle read the node", labels=["node"]),
            "converged": GaugeMetricFamily("picl_node_converged",
                                           "1 when the node matches the spec", labels=["node"]),
            "pending": GaugeMetricFamily("picl_node_pending_changes",
                                         "Changes the node still needs", labels=["node"]),
            "temperature": GaugeMetricFamily("picl_node_temperature_celsius",
                                             "The node's hottest thermal zone", labels=["node"]),
            "throttled": GaugeMetricFamily("picl_node_throttled",
                                           "1 when the board is under-voltage or throttled now",
                                           labels=["node"]),
        }
        for node in status.nodes:
            labels = [node.node]
            per_node["reachable"].add_metric(labels, float(node.state not in ("unreachable",
                                                                              "unknown")))
            per_node["converged"].add_metric(labels, float(node.state == "converged"))
            per_node["pending"].add_metric(labels, float(pending_changes(node)))
            if node.temperature is not None:
                per_node["temperature"].add_metric(labels, node.temperature)
            if (value := throttled(node.throttled)) is not None:
                per_node["throttled"].add_metric(labels, value)
        yield from per_node.values()


class Metrics:
    """The agent's registry: the status's gauges, and the cycles counted as they end."""

    def __init__(self, status: Callable[[], st.Status]):
        disable_created_metrics()  # a _created series per counter: noise for a Pi's Prometheus
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(StatusCollector(status))
        self.cycles = Counter("picl_cycles", "Cycles run, by what started them and how they "
                              "ended", ["trigger", "result"], registry=self.registry)
        self.durations = Histogram("picl_cycle_duration_seconds", "How long cycles take",
                                   buckets=BUCKETS, registry=self.registry)

    def cycle_ended(self, cycle: st.Cycle) -> None:
        self.cycles.labels(cycle.trigger, cycle.outcome).inc()
        if cycle.seconds is not None:
            self.durations.observe(cycle.seconds)

    def names(self) -> set[str]:
        """Every metric name a scrape shows (a counter's _total, a histogram's series)."""
        return {f"{family.name}{suffix}" for family in self.registry.collect()
                for suffix in SUFFIXES.get(family.type, ("",))}


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
        """Scrapes are not news: nothing in the journal."""


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class Endpoint:
    """The HTTP server, moved when the spec's address or port changes."""

    def __init__(self, metrics: Metrics):
        self.app = make_wsgi_app(metrics.registry)
        self.server: _Server | None = None
        self.where: tuple[str, int] | None = None

    def serve(self, address: str, port: int) -> str:
        """Serve at address:port (only there); the URL, or "" when it cannot bind (logged)."""
        if self.where == (address, port) and self.server is not None:
            return url(address, port)
        self.close()
        try:
            server = make_server(address, port, self.app, _Server, handler_class=_Quiet)
        except OSError as exc:
            log.warning("metrics: cannot serve at %s:%d: %s", address, port, exc)
            return ""
        threading.Thread(target=server.serve_forever, args=(POLL,), daemon=True,
                         name="metrics").start()
        self.server, self.where = server, (address, port)
        log.info("metrics at %s", url(address, port))
        return url(address, port)

    def close(self) -> None:
        server, self.server, self.where = self.server, None, None
        if server is not None:
            server.server_close()  # the socket, now: the next bind may take the same port
            threading.Thread(target=server.shutdown, daemon=True).start()  # within POLL
