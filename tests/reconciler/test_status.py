"""The status as data: each transition, the conditions it leaves, and the round trip to JSON."""

from __future__ import annotations

import pytest

from picl.reconciler import status as st
from picl.reconciler.status import NodeStatus, Result, Status

A, B = "a" * 40, "b" * 40
T0 = 1_800_000_000.0


def conditions(status: Status) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def cycle(trigger: str = "push") -> Status:
    return st.observed(st.began(Status(branch="main"), trigger, T0), A, attempted=True)


CONVERGED = (NodeStatus("node0", "converged"), NodeStatus("node1", "converged"))
APPLIED = (NodeStatus("node0", "converged", ("~ hosts",)), NodeStatus("node1", "converged"))
DRIFTED = (NodeStatus("node0", "converged"), NodeStatus("node1", "drifted", ("~ hosts",)))
UNREACHABLE = (NodeStatus("node0", "converged"),
               NodeStatus("node1", "unreachable", error="unreachable: timed out"))
FAILED = (NodeStatus("node0", "failed", ("~ hosts",), "apt failed"),
          NodeStatus("node1", "unreachable", error="unreachable"))

# (result, outcome, Ready, Reconciling, applied revision afterwards)
FINISHED = [
    (Result(A, "enforce", CONVERGED), "unchanged", ("True", "ReconciliationSucceeded"),
     ("False", "Reconciled"), A),
    (Result(A, "enforce", APPLIED, applied=True), "applied",
     ("True", "ReconciliationSucceeded"), ("False", "Reconciled"), A),
    (Result(A, "report", DRIFTED), "drifted", ("False", "DriftDetected"),
     ("False", "Reconciled"), None),
    (Result(A, "report", CONVERGED), "unchanged", ("True", "ReconciliationSucceeded"),
     ("False", "Reconciled"), A),
    (Result(A, "enforce", UNREACHABLE), "retrying", ("False", "NodesUnreachable"),
     ("True", "ProgressingWithRetry"), None),
    (Result(A, "enforce", FAILED, applied=True), "retrying", ("False", "ApplyFailed"),
     ("True", "ProgressingWithRetry"), None),
]


@pytest.mark.parametrize(("result", "outcome", "ready", "reconciling", "applied"), FINISHED)
def test_finished(result: Result, outcome: str, ready: tuple[str, str],
                  reconciling: tuple[str, str], applied: str | None) -> None:
    status = st.finished(cycle(), result, T0 + 3, T0 + 300)
    assert conditions(status)["Ready"] == ready
    assert conditions(status)["Reconciling"] == reconciling
    assert conditions(status)["Stalled"] == ("False", "Reconciled")
    assert status.revision.applied == applied
    assert status.cycle is not None
    assert (status.cycle.outcome, status.cycle.finished, status.cycle.revision) == \
        (outcome, T0 + 3, A)
    assert status.cycle.nodes == {n.node: n.state for n in result.nodes}
    assert status.next_cycle == T0 + 300


def test_stalled_keeps_the_last_applied_revision() -> None:
    good = st.finished(cycle(), Result(A, "enforce", CONVERGED), T0 + 1, T0 + 300)
    bad = st.observed(st.began(good, "push", T0 + 10), B, attempted=True)
    status = st.stalled(bad, "InvalidSpec", "cluster.toml:3:1: nodes: required", T0 + 11)
    assert conditions(status) == {"Ready": ("False", "InvalidSpec"),
                                  "Reconciling": ("False", "InvalidSpec"),
                                  "Stalled": ("True", "InvalidSpec"),
                                  "Suspended": ("False", "NotSuspended"),
                                  "RolledBack": ("False", "NotRolledBack")}
    assert (status.revision.observed, status.revision.attempted, status.revision.applied) == \
        (B, B, A)
    assert "cluster.toml:3:1" in status.condition("Stalled").message
    assert status.nodes == CONVERGED  # the last good state, as it was
    assert status.cycle is not None and status.cycle.outcome == "stalled"
    assert status.next_cycle is None


def test_a_new_good_commit_clears_stalled() -> None:
    stalled = st.stalled(cycle(), "VerificationFailed", "not signed", T0 + 1)
    again = st.observed(st.began(stalled, "push", T0 + 5), B, attempted=True)
    status = st.finished(again, Result(B, "enforce", CONVERGED), T0 + 6, T0 + 300)
    assert conditions(status)["Stalled"] == ("False", "Reconciled")
    assert conditions(status)["Ready"] == ("True", "ReconciliationSucceeded")
    assert status.revision.applied == B


def test_retrying_says_when() -> None:
    status = st.retrying(cycle(), "LockHeld", "another apply is running", T0 + 1, T0 + 6)
    assert conditions(status)["Ready"] == ("False", "LockHeld")
    assert conditions(status)["Reconciling"] == ("True", "ProgressingWithRetry")
    assert status.next_cycle == T0 + 6
    assert status.cycle is not None and status.cycle.outcome == "retrying"


def test_suspended_is_not_healthy_looking() -> None:
    ready = st.finished(cycle(), Result(A, "enforce", CONVERGED), T0 + 1, T0 + 300)
    status = st.suspend(ready, "federico@laptop", T0 + 2)
    assert conditions(status)["Suspended"] == ("True", "Suspended")
    assert conditions(status)["Ready"] == ("False", "Suspended")
    assert "federico@laptop" in status.condition("Suspended").message
    assert status.next_cycle is None
    # Suspending again keeps the moment it started.
    assert st.suspend(status, "someone else", T0 + 50).suspended.since == T0 + 2
    resumed = st.resume(status, T0 + 60)
    assert resumed.suspended is None
    assert conditions(resumed)["Suspended"] == ("False", "Resumed")
    assert conditions(resumed)["Ready"] == ("Unknown", "Resumed")


def test_a_condition_keeps_its_since_while_its_truth_holds() -> None:
    first = st.set_condition(Status(), "Ready", "True", "ReconciliationSucceeded", "one", T0)
    second = st.set_condition(first, "Ready", "True", "ReconciliationSucceeded", "two", T0 + 9)
    third = st.set_condition(second, "Ready", "False", "ApplyFailed", "three", T0 + 20)
    assert [s.condition("Ready").since for s in (first, second, third)] == [T0, T0, T0 + 20]
    assert second.condition("Ready").message == "two"


def test_cycles_are_numbered() -> None:
    one = st.finished(cycle(), Result(A, "enforce", CONVERGED), T0 + 1, T0 + 300)
    two = st.began(one, "interval", T0 + 300)
    assert two.cycle is not None and (two.cycle.number, two.cycle.finished) == (2, None)
    assert conditions(two)["Reconciling"] == ("True", "Progressing")
    assert conditions(two)["Ready"] == ("True", "ReconciliationSucceeded")  # until it says


def test_applying_names_the_nodes() -> None:
    nodes = (NodeStatus("node0", "converged"), NodeStatus("node1", "applying", ("~ hosts",)))
    status = st.applying(cycle(), nodes, T0 + 1)
    assert status.condition("Reconciling").message.endswith("to node1")
    assert status.nodes == nodes


def test_no_commit_yet() -> None:
    status = st.waiting_for_commits(st.began(Status(branch="main"), "boot", T0), T0, T0 + 300)
    assert conditions(status)["Ready"] == ("Unknown", "NoRevision")
    assert "push one" in status.condition("Ready").message


def test_json_round_trip() -> None:
    status = st.suspend(st.finished(cycle(), Result(A, "enforce", APPLIED, applied=True),
                                    T0 + 1, T0 + 300), "me", T0 + 2)
    assert Status.from_json(status.to_json()) == status
    # A newer agent's extra keys are ignored by an older reader.
    data = status.to_json() | {"future": 1}
    data["nodes"][0]["humidity"] = 51
    assert Status.from_json(data) == status


def test_short() -> None:
    assert st.short(A, "main") == "main@sha1:aaaaaaaaaaaa"
    assert st.short(None, "main") == "(none)"


REVERTED = (NodeStatus("node0", "converged"),
            NodeStatus("node1", "failed", ("~ network",), "ROLLED BACK: not confirmed",
                       rolled_back=True))


@pytest.mark.parametrize(("nodes", "rolled_back"), [
    (REVERTED, ("True", "ChangesReverted")),
    (FAILED, ("False", "NotRolledBack")),
    (CONVERGED, ("False", "NotRolledBack")),
])
def test_a_revert_is_its_own_condition(nodes: tuple[NodeStatus, ...],
                                       rolled_back: tuple[str, str]) -> None:
    status = st.finished(cycle(), Result(A, "enforce", nodes, applied=True), T0 + 3, T0 + 300)
    assert conditions(status)["RolledBack"] == rolled_back
    if rolled_back[0] == "True":
        assert conditions(status)["Ready"] == ("False", "ApplyFailed")
        (condition,) = [c for c in status.conditions if c.type == "RolledBack"]
        assert "node1: ROLLED BACK: not confirmed" in condition.message


def test_rolled_back_survives_the_json_round_trip() -> None:
    status = st.finished(cycle(), Result(A, "enforce", REVERTED, applied=True), T0, T0 + 300)
    again = Status.from_json(status.to_json())
    assert again.nodes[1].rolled_back and conditions(again)["RolledBack"][0] == "True"
