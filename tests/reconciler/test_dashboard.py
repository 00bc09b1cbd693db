"""docs/grafana-dashboard.json asks only for metrics that picl or node_exporter export.

picl's names come from the agent's own registry; node_exporter's are the few the board uses,
each checked on a real exporter by the metrics lab test.
"""

from __future__ import annotations

import json
import re

from picl.reconciler.metrics import Metrics
from picl.reconciler.status import Status
from tests.conftest import REPO

BOARD = REPO / "docs" / "grafana-dashboard.json"
NODE_EXPORTER_NAMES = {"node_cpu_seconds_total", "node_memory_MemAvailable_bytes",
                       "node_memory_MemTotal_bytes", "node_load1"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
                "and", "or", "unless", "inf", "nan"}


def expressions() -> list[str]:
    board = json.loads(BOARD.read_text())
    return [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression reads: words that are not functions, keywords,
    labels (in matchers and groupings), durations or numbers."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expression)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    words = re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*(?!\s*\()(?![A-Za-z0-9_:])", text)
    return {w for w in words if w.lower() not in PROMQL_WORDS}


def test_the_names_are_read_right() -> None:
    assert metric_names('1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))') \
        == {"node_cpu_seconds_total"}
    assert metric_names("histogram_quantile(0.5, sum by (le) (rate(picl_x_bucket[1h])))") == \
        {"picl_x_bucket"}
    assert metric_names("time() - picl_y") == {"picl_y"}


def test_every_query_uses_picls_or_node_exporters_names_only() -> None:
    picl = Metrics(lambda: Status()).names()
    used = set().union(*(metric_names(e) for e in expressions()))
    assert used - picl - NODE_EXPORTER_NAMES == set()
    assert used & NODE_EXPORTER_NAMES == NODE_EXPORTER_NAMES  # the lab test checks each exists


def test_the_board_shows_what_the_issue_asks() -> None:
    used = set().union(*(metric_names(e) for e in expressions()))
    assert {"picl_ready", "picl_stalled", "picl_revision_info", "picl_node_converged",
            "picl_node_reachable", "picl_node_temperature_celsius",
            "picl_cycle_duration_seconds_bucket"} <= used
