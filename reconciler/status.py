"""The agent's status as data: revisions, conditions, nodes, the last cycle (as Flux records it).

Pure: each function takes a status and what happened, and returns the next status. The store
writes it; `picl status` and the LEDs read it and decide nothing.

Conditions (each with a reason, a message, and since when it holds):
- `Ready`: the cluster is at the applied revision (True), or why not (False, Unknown).
- `Reconciling`: a cycle is running, or a retry is due.
- `Stalled`: the observed revision cannot be applied until a new commit (nothing was applied).
- `Suspended`: a person paused the agent; nothing converges until `picl agent resume`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

READY, RECONCILING, STALLED, SUSPENDED = "Ready", "Reconciling", "Stalled", "Suspended"
ROLLED_BACK = "RolledBack"
CONDITIONS = (READY, RECONCILING, STALLED, SUSPENDED, ROLLED_BACK)
# A node's state, as the LEDs name them.
NODE_STATES = ("converged", "drifted", "applying", "failed", "unreachable", "unknown")
# How a cycle ended, in the history.
OUTCOMES = ("running", "applied", "unchanged", "drifted", "retrying", "stalled", "failed",
            "interrupted")
HISTORY = 100  # cycles kept


@dataclass(frozen=True)
class Condition:
    type: str
    status: str  # "True", "False" or "Unknown"
    reason: str
    message: str = ""
    since: float = 0.0  # when `status` last changed


@dataclass(frozen=True)
class NodeStatus:
    node: str
    state: str = "unknown"
    changes: tuple[str, ...] = ()  # "~ hosts", "+ user bob": what differed from the spec
    error: str = ""
    rolled_back: bool = False  # its risky changes were undone by the node (confirm-or-revert)
    temperature: float | None = None  # °C, as the cycle's read of the node found it
    throttled: int | None = None  # the firmware's get_throttled bits (a Pi's), when it has them


@dataclass(frozen=True)
class Revisions:
    observed: str | None = None  # the branch's tip, as last fetched
    attempted: str | None = None  # the last revision that passed the checks and was tried
    applied: str | None = None  # the last revision every node converged to


@dataclass(frozen=True)
class Cycle:
    """One reconcile, as the history keeps it."""

    number: int
    trigger: str
    started: float
    finished: float | None = None
    revision: str | None = None
    outcome: str = "running"
    reason: str = ""
    message: str = ""
    changes: int = 0
    nodes: dict[str, str] = field(default_factory=dict)  # node -> state

    @property
    def seconds(self) -> float | None:
        return None if self.finished is None else self.finished - self.started


@dataclass(frozen=True)
class Suspension:
    since: float
    by: str = ""


@dataclass(frozen=True)
class Status:
    cluster: str = ""
    branch: str = ""
    mode: str = "enforce"
    revision: Revisions = Revisions()
    conditions: tuple[Condition, ...] = ()
    nodes: tuple[NodeStatus, ...] = ()
    cycle: Cycle | None = None  # the running or last cycle
    next_cycle: float | None = None
    suspended: Suspension | None = None
    updated: float = 0.0
    agent_boot: str = ""  # the boot id of the primary when the agent last started
    applied_at: float | None = None  # when a cycle last left every node at the applied revision
    metrics: str = ""  # the URL the agent serves its metrics at ("": not serving)

    def condition(self, kind: str) -> Condition:
        for condition in self.conditions:
            if condition.type == kind:
                return condition
        return Condition(kind, "Unknown", "NotYetObserved")

    @property
    def ready(self) -> bool:
        return self.condition(READY).status == "True"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Status:
        """A status as written by `to_json` (keys this version does not know are ignored)."""
        def build(kind: type[Any], value: Any) -> Any:
            known = {f.name for f in fields(kind)}
            return kind(**{k: v for k, v in value.items() if k in known})

        values = {k: v for k, v in data.items() if k in {f.name for f in fields(cls)}}
        values["revision"] = build(Revisions, data.get("revision") or {})
        values["conditions"] = tuple(build(Condition, c) for c in data.get("conditions", []))
        values["nodes"] = tuple(
            build(NodeStatus, {**n, "changes": tuple(n.get("changes", []))})
            for n in data.get("nodes", []))
        values["cycle"] = build(Cycle, data["cycle"]) if data.get("cycle") else None
        values["suspended"] = build(Suspension, data["suspended"]) if data.get("suspended") \
            else None
        return cls(**values)


def cycle_from_json(data: dict[str, Any]) -> Cycle:
    known = {f.name for f in fields(Cycle)}
    return Cycle(**{k: v for k, v in data.items() if k in known})


def set_condition(status: Status, kind: str, state: str, reason: str, message: str,
                  now: float) -> Status:
    """`status` with one condition set; its `since` moves only when its truth changes."""
    old = status.condition(kind)
    since = old.since if old.status == state and old.since else now
    new = Condition(kind, state, reason, message, since)
    others = tuple(c for c in status.conditions if c.type != kind)
    ordered = sorted((*others, new), key=lambda c: CONDITIONS.index(c.type)
                     if c.type in CONDITIONS else len(CONDITIONS))
    return replace(status, conditions=tuple(ordered), updated=now)


@dataclass(frozen=True)
class Result:
    """What a cycle that got as far as planning found and did."""

    revision: str  # the revision planned (and applied, in enforce mode)
    mode: str
    nodes: tuple[NodeStatus, ...]
    applied: bool = False  # changes were applied

    @property
    def changes(self) -> int:
        return sum(len(n.changes) for n in self.nodes)

    @property
    def broken(self) -> tuple[NodeStatus, ...]:
        """Nodes that could not be read or converged: a retry is due."""
        return tuple(n for n in self.nodes if n.state in ("failed", "unreachable"))

    @property
    def drifted(self) -> tuple[NodeStatus, ...]:
        return tuple(n for n in self.nodes if n.state == "drifted")


def short(revision: str | None, branch: str) -> str:
    """A revision as people read it: main@sha1:0123456789ab."""
    return f"{branch}@sha1:{revision[:12]}" if revision else "(none)"


def began(status: Status, trigger: str, now: float) -> Status:
    """A cycle started: Reconciling, the rest as it was."""
    number = status.cycle.number + 1 if status.cycle else 1
    status = replace(status, cycle=Cycle(number, trigger, now), next_cycle=None)
    if status.suspended is None:
        status = set_condition(status, SUSPENDED, "False", "NotSuspended", "", now)
    return set_condition(status, RECONCILING, "True", "Progressing",
                         f"cycle {number} ({trigger}) running", now)


def observed(status: Status, revision: str | None, *, attempted: bool = False) -> Status:
    """The fetch saw `revision`; with `attempted`, it passed the checks and is being tried."""
    revisions = replace(status.revision, observed=revision)
    if attempted:
        revisions = replace(revisions, attempted=revision)
    return replace(status, revision=revisions)


def applying(status: Status, nodes: tuple[NodeStatus, ...], now: float) -> Status:
    """The plan is made; these nodes (with changes) are being converged."""
    names = ", ".join(n.node for n in nodes if n.state == "applying")
    status = replace(status, nodes=_merged(status.nodes, nodes))
    return set_condition(status, RECONCILING, "True", "Progressing",
                         f"applying {short(status.revision.attempted, status.branch)} to {names}",
                         now)


def _merged(old: tuple[NodeStatus, ...], new: tuple[NodeStatus, ...]) -> tuple[NodeStatus, ...]:
    """The new node states; a node the new ones do not name keeps its old state."""
    named = {n.node for n in new}
    return tuple(new) + tuple(n for n in old if n.node not in named)


def _end(status: Status, outcome: str, reason: str, message: str, now: float,
         changes: int = 0) -> Status:
    cycle = status.cycle or Cycle(0, "unknown", now)
    cycle = replace(cycle, finished=now, revision=status.revision.attempted
                    if outcome not in ("stalled",) else status.revision.observed,
                    outcome=outcome, reason=reason, message=message, changes=changes,
                    nodes={n.node: n.state for n in status.nodes})
    return replace(status, cycle=cycle, updated=now)


def finished(status: Status, result: Result, now: float, next_cycle: float) -> Status:
    """A cycle planned, and applied (enforce) or only recorded the drift (report)."""
    status = replace(status, nodes=_merged(status.nodes, result.nodes), mode=result.mode,
                     next_cycle=next_cycle)
    status = set_condition(status, STALLED, "False", "Reconciled", "", now)
    revision = short(result.revision, status.branch)
    reverted = [n for n in result.nodes if n.rolled_back]
    if reverted:  # a revert is a failure: said as such, not only as a failed node
        names = ", ".join(f"{n.node}: {n.error}" for n in reverted)
        status = set_condition(status, ROLLED_BACK, "True", "ChangesReverted",
                               f"{revision}: {names}", now)
    else:
        status = set_condition(status, ROLLED_BACK, "False", "NotRolledBack", "", now)
    if result.broken:
        names = ", ".join(f"{n.node} ({n.state})" for n in result.broken)
        reason = ("NodesUnreachable" if all(n.state == "unreachable" for n in result.broken)
                  else "ApplyFailed")
        status = set_condition(status, READY, "False", reason, f"{revision}: {names}", now)
        status = set_condition(status, RECONCILING, "True", "ProgressingWithRetry",
                               "retrying with backoff", now)
        return _end(status, "retrying", reason, f"{revision}: {names}", now, result.changes)
    status = set_condition(status, RECONCILING, "False", "Reconciled", "", now)
    if result.drifted:
        names = ", ".join(f"{n.node} ({len(n.changes)})" for n in result.drifted)
        message = f"{revision}: drift on {names}; report mode: not applied"
        status = set_condition(status, READY, "False", "DriftDetected", message, now)
        return _end(status, "drifted", "DriftDetected", message, now, result.changes)
    status = replace(status, revision=replace(status.revision, applied=result.revision),
                     applied_at=now)
    if result.applied:
        message = f"applied revision {revision}"
        outcome = "applied"
    else:
        message = f"{revision}: no changes"
        outcome = "unchanged"
    status = set_condition(status, READY, "True", "ReconciliationSucceeded", message, now)
    return _end(status, outcome, "ReconciliationSucceeded", message, now, result.changes)


def upstream_left_out(status: Status, error: str, now: float) -> Status:
    """A cycle converged from the primary's repository alone, the upstream out of reach or
    refused: Ready says so, and a retry is due (Reconciling, UpstreamUnreachable)."""
    ready = status.condition(READY)
    status = set_condition(status, READY, ready.status, ready.reason,
                           f"{ready.message} ({error})", now)
    return set_condition(status, RECONCILING, "True", "UpstreamUnreachable",
                         f"{error}; retrying with backoff", now)


def stalled(status: Status, reason: str, message: str, now: float) -> Status:
    """The observed revision cannot be applied; nothing was, the last good state stays."""
    observed_revision = short(status.revision.observed, status.branch)
    text = f"{observed_revision}: {message}"
    status = replace(status, next_cycle=None)
    status = set_condition(status, STALLED, "True", reason, text, now)
    status = set_condition(status, READY, "False", reason, text, now)
    status = set_condition(status, RECONCILING, "False", reason, "waiting for a new commit", now)
    return _end(status, "stalled", reason, message, now)


def retrying(status: Status, reason: str, message: str, now: float, retry_at: float,
             outcome: str = "retrying") -> Status:
    """Not now: a retry is due at `retry_at`; until a cycle gets through, Ready is False."""
    status = replace(status, next_cycle=retry_at)
    status = set_condition(status, STALLED, "False", reason, "", now)
    status = set_condition(status, READY, "False", reason, message, now)
    status = set_condition(status, RECONCILING, "True", "ProgressingWithRetry",
                           f"{message}; retrying with backoff", now)
    return _end(status, outcome, reason, message, now)


def suspend(status: Status, by: str, now: float) -> Status:
    """Paused by a person: not healthy-looking, whatever the last cycle found."""
    since = status.suspended.since if status.suspended else now
    status = replace(status, suspended=Suspension(since, by), next_cycle=None)
    message = f"suspended by {by or 'someone'}: nothing converges until `picl agent resume`"
    status = set_condition(status, SUSPENDED, "True", "Suspended", message, now)
    status = set_condition(status, RECONCILING, "False", "Suspended", message, now)
    return set_condition(status, READY, "False", "Suspended", message, now)


def resume(status: Status, now: float) -> Status:
    """No longer paused: Ready is unknown until the cycle that starts now says."""
    if status.suspended is None:
        return status
    status = replace(status, suspended=None)
    status = set_condition(status, SUSPENDED, "False", "Resumed", "", now)
    return set_condition(status, READY, "Unknown", "Resumed", "a cycle is starting", now)


def waiting_for_commits(status: Status, now: float, next_cycle: float) -> Status:
    """The repository has no commit on the branch yet: nothing to converge to."""
    message = f"no commit on {status.branch} yet: push one to the primary's repository"
    status = replace(status, next_cycle=next_cycle)
    status = set_condition(status, STALLED, "False", "NoRevision", "", now)
    status = set_condition(status, READY, "Unknown", "NoRevision", message, now)
    status = set_condition(status, RECONCILING, "False", "NoRevision", message, now)
    return _end(status, "unchanged", "NoRevision", message, now)
