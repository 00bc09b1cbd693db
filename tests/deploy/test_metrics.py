"""[metrics] planned as data: the packages each node needs, the files, the scrape config."""

from __future__ import annotations

from pathlib import Path

import pytest

from picl.deploy import metrics
from picl.deploy.plan import needed, reads
from picl.deploy.view import ClusterFacts, NodeView
from picl.facts.node import Observed
from picl.spec import Cluster
from tests.deploy.clusters import small_cluster
from tests.deploy.conftest import fresh_node

SERVER = "\n[metrics]\n[metrics.prometheus]\nretention = \"8w\"\nretention_size = \"512MB\"\n"


def spec(tmp_path: Path, extra: str = SERVER) -> Cluster:
    return small_cluster(tmp_path, extra=extra, ssid=None, psk=None)


def plan(cluster: Cluster, name: str, observed: Observed | None = None) -> dict[str, str]:
    """What the concern would write on `name`: path -> content."""
    observed = observed or fresh_node(name)
    view = NodeView(cluster, cluster.node(name), observed, ClusterFacts(spec_dir=Path(".")))
    return {c.resource.removeprefix("metrics "): c.steps[0].arguments["src"].getvalue()
            for c in metrics.changes(view)}


@pytest.mark.parametrize(("extra", "node", "packages"), [
    (SERVER, "node0", ["prometheus-node-exporter", "prometheus"]),
    (SERVER, "node1", ["prometheus-node-exporter"]),
    ("\n[metrics]\n", "node0", ["prometheus-node-exporter"]),
    ("\n[metrics]\nnode_exporter = false\n", "node1", []),
    ("\n[metrics]\nnode_exporter = false\n[metrics.prometheus]\n", "node0", ["prometheus"]),
    ("", "node0", []),
])
def test_what_each_node_installs(tmp_path: Path, extra: str, node: str,
                                 packages: list[str]) -> None:
    cluster = spec(tmp_path, extra)
    assert [p for p, c in needed(cluster, cluster.node(node)).items() if c == "metrics"] == \
        packages


def test_exporters_listen_on_the_wired_address_only(tmp_path: Path) -> None:
    files = plan(spec(tmp_path), "node1")
    assert files == {metrics.EXPORTER_DEFAULTS: metrics.HEADER +
                     'ARGS="--web.listen-address=10.1.10.241:9100"\n'}


def test_prometheus_on_the_primary_with_the_specs_retention(tmp_path: Path) -> None:
    files = plan(spec(tmp_path), "node0")
    args = files[metrics.SERVER_DEFAULTS].splitlines()[1]
    assert args == ('ARGS="--web.listen-address=10.1.10.240:9090 '
                    '--storage.tsdb.retention.time=8w --storage.tsdb.retention.size=512MB"')


def test_the_scrape_config_names_the_agent_and_every_exporter(tmp_path: Path) -> None:
    text = plan(spec(tmp_path), "node0")[metrics.SCRAPE_CONFIG]
    assert "  - job_name: picl\n    static_configs:\n      - targets: ['node0:10105']\n" in text
    assert [line.strip() for line in text.splitlines() if ":9100" in line] == [
        f"- targets: ['{n}:9100']" for n in ("node0", "node1", "node2")]


def test_the_agents_port_follows_the_spec(tmp_path: Path) -> None:
    text = plan(spec(tmp_path, "\n[metrics]\nport = 10200\n[metrics.prometheus]\n"),
                "node0")[metrics.SCRAPE_CONFIG]
    assert "['node0:10200']" in text


def test_the_scrape_config_is_checked_by_promtool_and_restarts_prometheus(tmp_path: Path) -> None:
    cluster = spec(tmp_path)
    view = NodeView(cluster, cluster.node("node0"), fresh_node("node0"),
                    ClusterFacts(spec_dir=Path(".")))
    (change,) = [c for c in metrics.changes(view) if c.resource.endswith("prometheus.yml")]
    assert change.steps[0].arguments["check"].startswith("promtool check config")
    assert change.steps[1].arguments["commands"] == ["systemctl restart prometheus"]


def test_files_as_wanted_are_no_change(tmp_path: Path) -> None:
    cluster = spec(tmp_path)
    observed = fresh_node("node0")
    observed.files.update({p: t.encode() for p, t in plan(cluster, "node0").items()})
    assert plan(cluster, "node0", observed) == {}


def test_without_metrics_nothing_is_read_or_written(tmp_path: Path) -> None:
    cluster = spec(tmp_path, "")
    for node in cluster.nodes:
        assert plan(cluster, node.name) == {}
        assert not set(reads(cluster, node).files) & {
            metrics.EXPORTER_DEFAULTS, metrics.SERVER_DEFAULTS, metrics.SCRAPE_CONFIG}


def test_the_plan_reads_the_files_it_compares(tmp_path: Path) -> None:
    cluster = spec(tmp_path)
    assert {metrics.EXPORTER_DEFAULTS, metrics.SERVER_DEFAULTS, metrics.SCRAPE_CONFIG} <= \
        set(reads(cluster, cluster.node("node0")).files)
    assert metrics.SCRAPE_CONFIG not in reads(cluster, cluster.node("node1")).files
