"""The agent's metrics as data: the values a status shows, the names, the endpoint's address."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from picl.reconciler import status as st
from picl.reconciler.metrics import Endpoint, Metrics, pending_changes, throttled
from picl.reconciler.status import Cycle, NodeStatus, Result, Status

A = "a" * 40
T0 = 1_800_000_000.0
# The names the issue and docs/metrics.md promise: dashboards and alerts rely on them.
PROMISED = {
    "picl_revision_info", "picl_ready", "picl_stalled", "picl_suspended", "picl_cycles_total",
    "picl_cycle_duration_seconds_bucket", "picl_cycle_duration_seconds_sum",
    "picl_cycle_duration_seconds_count", "picl_last_applied_timestamp_seconds",
    "picl_node_reachable", "picl_node_converged", "picl_node_pending_changes",
    "picl_node_temperature_celsius", "picl_node_throttled",
}


def scrape(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client import generate_latest
    text = generate_latest(metrics.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def applied() -> Status:
    began = st.observed(st.began(Status(branch="main"), "push", T0), A, attempted=True)
    nodes = (NodeStatus("node0", "converged", temperature=48.3, throttled=0),
             NodeStatus("node1", "converged", ("~ hosts",), temperature=51.0, throttled=0x50005))
    return st.finished(began, Result(A, "enforce", nodes, applied=True), T0 + 2, T0 + 300)


def test_exactly_the_promised_names() -> None:
    assert Metrics(lambda: Status()).names() == PROMISED


def test_a_ready_cluster() -> None:
    values = scrape(Metrics(applied))
    assert values[("picl_revision_info", (("branch", "main"), ("revision", A)))] == 1
    assert values[("picl_ready", ())] == 1
    assert values[("picl_stalled", ())] == 0
    assert values[("picl_suspended", ())] == 0
    assert values[("picl_last_applied_timestamp_seconds", ())] == T0 + 2
    for node in ("node0", "node1"):
        assert values[("picl_node_converged", (("node", node),))] == 1
        assert values[("picl_node_reachable", (("node", node),))] == 1
        assert values[("picl_node_pending_changes", (("node", node),))] == 0  # applied
    assert values[("picl_node_temperature_celsius", (("node", "node1"),))] == 51.0
    assert values[("picl_node_throttled", (("node", "node0"),))] == 0
    assert values[("picl_node_throttled", (("node", "node1"),))] == 1


def test_drift_unreachable_and_stall() -> None:
    began = st.observed(st.began(Status(branch="main"), "interval", T0), A, attempted=True)
    nodes = (NodeStatus("node0", "drifted", ("~ hosts", "+ user bob")),
             NodeStatus("node1", "unreachable", error="unreachable: timed out"))
    status = st.stalled(st.finished(began, Result(A, "report", nodes), T0, T0), "InvalidSpec",
                        "bad", T0 + 5)
    values = scrape(Metrics(lambda: status))
    assert values[("picl_stalled", ())] == 1 and values[("picl_ready", ())] == 0
    assert values[("picl_node_converged", (("node", "node0"),))] == 0
    assert values[("picl_node_pending_changes", (("node", "node0"),))] == 2
    assert values[("picl_node_reachable", (("node", "node1"),))] == 0
    # Unknown readings are absent, never a made-up zero.
    assert ("picl_node_temperature_celsius", (("node", "node1"),)) not in values
    assert ("picl_last_applied_timestamp_seconds", ()) not in values


def test_suspended() -> None:
    values = scrape(Metrics(lambda: st.suspend(applied(), "bob", T0 + 9)))
    assert (values[("picl_suspended", ())], values[("picl_ready", ())]) == (1, 0)


def test_cycles_are_counted_by_trigger_and_result() -> None:
    metrics = Metrics(lambda: Status())
    for cycle in (Cycle(1, "install", T0, T0 + 0.3, outcome="unchanged"),
                  Cycle(2, "push", T0, T0 + 4, outcome="applied"),
                  Cycle(3, "push", T0, T0 + 6, outcome="applied")):
        metrics.cycle_ended(cycle)
    values = scrape(metrics)
    assert values[("picl_cycles_total", (("result", "applied"), ("trigger", "push")))] == 2
    assert values[("picl_cycles_total", (("result", "unchanged"), ("trigger", "install")))] == 1
    assert values[("picl_cycle_duration_seconds_count", ())] == 3
    assert values[("picl_cycle_duration_seconds_bucket", (("le", "5.0"),))] == 2


@pytest.mark.parametrize(("node", "pending"), [
    (NodeStatus("n", "converged", ("~ hosts",)), 0),  # applied this cycle
    (NodeStatus("n", "drifted", ("~ hosts", "~ target")), 2),
    (NodeStatus("n", "applying", ("~ hosts",)), 1),
    (NodeStatus("n", "failed", ("~ hosts",), "apt"), 1),
    (NodeStatus("n", "unreachable"), 0),
])
def test_pending_changes(node: NodeStatus, pending: int) -> None:
    assert pending_changes(node) == pending


@pytest.mark.parametrize(("bits", "value"), [
    (None, None), (0, 0.0), (0x1, 1.0), (0x4, 1.0), (0x50000, 0.0), (0x50005, 1.0)])
def test_throttled_is_now_not_since_boot(bits: int | None, value: float | None) -> None:
    assert throttled(bits) == value


def test_the_endpoint_answers_on_its_address_only() -> None:
    endpoint = Endpoint(Metrics(applied))
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    try:
        assert endpoint.serve("127.0.0.1", port) == f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            assert b"picl_ready 1.0" in answer.read()
        with pytest.raises(OSError):  # another address of this machine: refused
            socket.create_connection(("127.0.0.2", port), timeout=5).close()
    finally:
        endpoint.close()


def test_a_wildcard_bind_would_answer_on_every_address() -> None:
    """The failure the test above prevents: bound to every address, the other one answers."""
    endpoint = Endpoint(Metrics(applied))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    try:
        assert endpoint.serve("0.0.0.0", port)
        socket.create_connection(("127.0.0.2", port), timeout=5).close()
    finally:
        endpoint.close()


def test_an_address_the_machine_lacks_is_logged_and_no_url(caplog: pytest.LogCaptureFixture) -> None:
    endpoint = Endpoint(Metrics(applied))
    assert endpoint.serve("192.0.2.1", 10105) == ""  # TEST-NET-1: never on this machine
    assert "metrics: cannot serve at 192.0.2.1:10105" in caplog.text
