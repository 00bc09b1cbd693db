"""Reading nodes and converging them, every node in parallel, each failing alone.

Each node gets a forked worker with a pyinfra `State` of its own: pyinfra's greenlets only run
in parallel under gevent's monkey-patching, which picl never applies to its process, and a
process per node also means a node that hangs is killed at its deadline without the others.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
import re
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import StringIO
from multiprocessing.connection import Connection as Pipe
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, TypeVar, cast

from picl.deploy import confirm, github, keys, metrics, slurm
from picl.deploy.changes import Change, Guard, NodePlan, Step
from picl.deploy.plan import Plan, plan_node, reads
from picl.deploy.view import ClusterFacts
from picl.facts.node import Reads, parse, script
from picl.spec import Cluster, Node
from picl.transport.connection import Connection
from picl.transport.remote import ask

READ_TIMEOUT = 60  # seconds for a node to answer the plan's one command
APPLY_TIMEOUT = 1800  # an apt install on a slow SD card takes minutes, not hours

T = TypeVar("T")


class NodeFailure(Exception):
    """A node could not be read or converged; the message says why, in a line or a few."""


class Unreachable(NodeFailure):
    """No SSH session to the node could be opened: nothing ran there."""


class RolledBack(NodeFailure):
    """The node undid its risky changes (confirm-or-revert): a failure, with the reason."""


def _pyinfra_logs() -> list[str]:
    """Collect what pyinfra reports at WARNING and above, to explain a failure."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("pyinfra")
    logger.handlers[:] = [Collect(logging.WARNING)]
    logger.propagate = False
    return lines


def _socket(address: str, timeout: int) -> socket.socket:
    """A TCP connection that notices a node losing power within seconds, not hours."""
    try:
        sock = socket.create_connection((address, 22), timeout=timeout)
    except OSError as exc:
        raise Unreachable(f"unreachable: {address}:22: {exc.strerror or exc}") from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 2)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 15_000)
    return sock


def _session(node: Node, connection: Connection) -> tuple[Any, Any, list[str]]:
    """A pyinfra State of one connected host."""
    from pyinfra.api import Config, Inventory, State
    from pyinfra.api.connect import connect_all
    from pyinfra.api.exceptions import PyinfraError
    from pyinfra.api.state import StateStage

    logs = _pyinfra_logs()
    sock = _socket(str(node.address), connection.connect_timeout)
    with connection.known_hosts_file(str(node.address)) as known_hosts:
        data = {"ssh_hostname": str(node.address), **connection.pyinfra_data(known_hosts)}
        data["ssh_paramiko_connect_kwargs"] = {**data["ssh_paramiko_connect_kwargs"],
                                               "sock": sock}
        inventory = Inventory(([(node.name, data)], {}))
        state = State(inventory, Config())
        state.set_stage(StateStage.Connect)
        with contextlib.suppress(PyinfraError):  # a failed connect is read from the host below
            connect_all(state)
    host = inventory.get_host(node.name)
    if not host.connected:
        raise Unreachable("unreachable: " + (_last(logs) or "cannot connect over SSH"))
    return state, host, logs


# pyinfra's own words around a step's error: its host prefix, and a count of commands run.
_PREFIX = re.compile(r"^\[[^\]]*\] ")
_COUNT = re.compile(r"^Error: executed \d+ commands?$")


def _last(logs: list[str]) -> str:
    """The last few lines of what went wrong, in the node's own words where there are any."""
    lines = [" ".join(_PREFIX.sub("", line.strip()).split()) for line in logs if line.strip()]
    said = [line for line in lines if not _COUNT.match(line)]
    if lines and not said:
        return "a step failed without a message"
    return "; ".join(said[-3:])


def read_nodes(items: dict[str, tuple[Node, Reads]], connection: Connection) -> Iterator[Outcome]:
    """Every node's state, read at once: the NodeState fact's one command per node.

    Run with OpenSSH (transport.remote) rather than through pyinfra: a plan, the apply after it
    and the next plan reuse one connection per node (see transport.connection).
    """
    commands = {name: (str(node.address), script(what)) for name, (node, what) in items.items()}
    for reply in ask(commands, connection, READ_TIMEOUT, shared=True):
        if reply.ok:
            yield Outcome(reply.node, True, value=parse(reply.stdout.splitlines()),
                          seconds=reply.seconds)
        elif reply.error.startswith("ssh:"):  # no session: nothing ran there
            yield Outcome(reply.node, False, error="unreachable: " +
                          reply.error.removeprefix("ssh:").strip(), seconds=reply.seconds)
        else:
            said = reply.error or " ".join(reply.stderr.strip().splitlines()[-1:])
            yield Outcome(reply.node, False, error=f"cannot read its state: "
                          f"{said or f'exit {reply.status}'}", seconds=reply.seconds)


def _fresh(arguments: dict[str, Any]) -> dict[str, Any]:
    # A file's content is read when uploaded: each run gets its own stream.
    return {k: StringIO(v.getvalue()) if isinstance(v, StringIO) else v
            for k, v in arguments.items()}


@functools.cache
def pyinfra_operation(declared: Callable[..., Any]) -> Any:
    """The pyinfra operation of one declared with `changes.operation` (made once per process,
    in the worker that applies)."""
    from pyinfra.api import operation

    return operation(is_idempotent=getattr(declared, "is_idempotent", True))(declared)


def apply_node(node: Node, steps: list[Step], connection: Connection) -> int:
    """Run the steps on the node, in order; the first failure stops it. Returns steps run."""
    from pyinfra.api.connect import disconnect_all
    from pyinfra.api.operation import add_op
    from pyinfra.api.operations import run_ops
    from pyinfra.api.state import StateStage

    state, host, logs = _session(node, connection)
    try:
        state.set_stage(StateStage.Prepare)
        for step in steps:
            add_op(state, pyinfra_operation(step.operation), host=host,
                   **_fresh(step.arguments))
        state.set_stage(StateStage.Execute)
        run_ops(state)
    except Exception as exc:  # pyinfra raises its own errors for failed hosts
        raise NodeFailure(failure(steps, _last(logs) or str(exc))) from None
    finally:
        disconnect_all(state)
    if host in state.failed_hosts:
        raise NodeFailure(failure(steps, _last(logs) or "an operation failed"))
    return len(steps)


def failure(steps: list[Step], said: str) -> str:
    """What the node said of a failed step, as each step shows it (credentials hidden): it is
    printed, and sent back to the node as the reason it reverted."""
    for step in steps:
        if step.shown:
            said = step.shown(said)
    return said


@dataclass
class Outcome:
    """What happened on one node."""

    node: str
    ok: bool
    value: Any = None
    error: str = ""
    seconds: float = 0.0
    rolled_back: bool = False  # its risky changes were undone: see deploy.confirm


def _child(work: Callable[[Any], Any], item: Any, pipe: Pipe) -> None:
    started = time.monotonic()
    try:
        pipe.send(("ok", work(item), time.monotonic() - started))
    except RolledBack as exc:
        pipe.send(("rolled_back", str(exc), time.monotonic() - started))
    except NodeFailure as exc:
        pipe.send(("error", str(exc), time.monotonic() - started))
    except BaseException as exc:  # noqa: BLE001 - a bug must come back as text, not a hang
        detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        pipe.send(("error", f"internal error: {detail}", time.monotonic() - started))
    finally:
        pipe.close()


def in_parallel(work: Callable[[T], Any], items: dict[str, T], timeout: float) -> Iterator[Outcome]:
    """Run `work` on every item in a forked process each; yield outcomes as they finish."""
    context = multiprocessing.get_context("fork")
    running: dict[Pipe, tuple[str, Any]] = {}
    for name, item in items.items():
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_child, args=(work, item, send), daemon=True)
        process.start()
        send.close()
        running[receive] = (name, process)
    deadline = time.monotonic() + timeout
    while running:
        ready = wait(list(running), timeout=max(0.0, deadline - time.monotonic()))
        if not ready:
            for pipe, (name, process) in running.items():
                process.kill()
                process.join()
                pipe.close()
                yield Outcome(name, False, error=f"no answer within {timeout:.0f}s")
            return
        for answered in ready:
            pipe = cast(Pipe, answered)  # wait() returns the pipes it was given
            name, process = running.pop(pipe)
            try:
                status, value, seconds = pipe.recv()
            except EOFError:
                status, value, seconds = "error", "its worker died", 0.0
            pipe.close()
            process.join()
            if status == "ok":
                yield Outcome(name, True, value=value, seconds=seconds)
            else:
                yield Outcome(name, False, error=value, seconds=seconds,
                              rolled_back=status == "rolled_back")


@dataclass
class Target:
    """Where a run goes: the spec, how to reach its nodes, where its secrets live."""

    cluster: Cluster
    connection: Connection
    secrets_file: Path
    spec_dir: Path
    only: list[str] = field(default_factory=list)  # node names; empty: every node
    # Seconds a node waits for picl to confirm a risky change before it undoes it.
    confirm_timeout: int = confirm.DEFAULT_TIMEOUT
    led_service: dict[str, str] = field(default_factory=dict)  # see deploy.leds

    def selected(self) -> list[Node]:
        return [n for n in self.cluster.nodes if not self.only or n.name in self.only]


def make_plan(target: Target) -> Plan:
    """Read every node (host keys are shared) and plan the selected ones. Writes nothing."""
    cluster = target.cluster
    plan = Plan()
    shared = ClusterFacts(spec_dir=target.spec_dir, led_service=target.led_service,
                          login_user=target.connection.user)
    names = [name for user in cluster.users for name in user.github]
    if names:
        resolved = github.resolve(names)
        shared.github_keys, plan.warnings = resolved.keys, resolved.warnings
    shared.cluster_keys = keys.cluster_keys(cluster)
    plan.warnings += [f"the cluster key of {user} is not in {target.secrets_file}: apply "
                      "generates it there (or `picl secrets generate`)"
                      for user in keys.missing(cluster)]
    if slurm.missing(cluster):
        plan.warnings.append(f"the munge key is not in {target.secrets_file}: apply generates "
                             "it there (or `picl secrets generate`)")

    errors: dict[str, str] = {}
    items = {node.name: (node, reads(cluster, node, shared)) for node in cluster.nodes}
    for outcome in read_nodes(items, target.connection):
        if outcome.ok:
            shared.observed[outcome.node] = outcome.value
            plan.sensors[outcome.node] = metrics.sensors(outcome.value)
        else:
            errors[outcome.node] = outcome.error
    for node in target.selected():
        if node.name in errors:
            plan.nodes.append(NodePlan(node.name, error=errors[node.name]))
        else:
            plan.nodes.append(plan_node(cluster, node, shared.observed[node.name], shared))
    return plan


def generate_missing(cluster: Cluster, secrets_file: Path) -> list[str]:
    """The secrets picl makes (cluster keys, the munge key) that the secrets file lacks,
    generated and stored there. Returns what was done."""
    return [*keys.generate_missing(cluster, secrets_file),
            *slurm.generate_missing(cluster, secrets_file)]


def generate_secrets(target: Target) -> list[str]:
    """Before apply plans, under the converge lock: see `generate_missing`."""
    return generate_missing(target.cluster, target.secrets_file)


def steps_of(changes: list[Change]) -> list[Step]:
    """The changes' steps in plan order; a step shared by several changes runs once."""
    seen: set[int] = set()
    steps = []
    for change in changes:
        for step in change.steps:
            if id(step) not in seen:
                seen.add(id(step))
                steps.append(step)
    return steps


# After a node's deadline, how long picl keeps trying to reach it: the revert re-activates
# the old network, which takes NetworkManager a few seconds.
REVERT_GRACE = 30


def _settle(node: Node, connection: Connection, command: str,
            until: float) -> tuple[confirm.Answer, str]:
    """Run a confirm or revert command over a *new* connection, retrying until `until`.

    Returns the node's answer, and why the first attempt could not connect ('' if it could).
    """
    from pyinfra.api import StringCommand
    from pyinfra.api.connect import disconnect_all

    first = ""
    while True:
        try:
            state, host, logs = _session(node, connection)
        except Unreachable as exc:
            first = first or str(exc)
            if time.monotonic() >= until:
                raise NodeFailure(f"no SSH connection since the change ({first})") from None
            time.sleep(2)
            continue
        try:
            ok, output = host.run_shell_command(StringCommand(command))
        finally:
            disconnect_all(state)
        answer = confirm.parse_answer(output.stdout_lines)
        if ok and answer is not None:
            return answer, first
        raise NodeFailure("cannot confirm its changes: "
                          + (output.stderr.strip() or _last(logs) or "no answer"))


def converge_node(node: Node, node_plan: NodePlan, connection: Connection,
                  confirm_timeout: int = confirm.DEFAULT_TIMEOUT) -> int:
    """Make the node's planned changes; returns how many were made.

    Changes with a guard run last, in a session of their own: the node arms its dead-man
    switch, they run, and picl confirms over a new connection (deploy.confirm). A failure
    among them reverts them all; a node picl cannot reach again reverts by itself. Blocked
    changes are not made: the node fails once the others are.
    """
    runnable = [c for c in node_plan.changes if not c.blocked]
    plain = [c for c in runnable if c.guard is None]
    risky = [c for c in runnable if c.guard is not None]
    if plain:
        apply_node(node, steps_of(plain), connection)
    if risky:
        _apply_guarded(node, risky, connection, confirm_timeout)
    if node_plan.blocked:
        raise NodeFailure("; ".join(f"{c.resource}: {c.blocked}" for c in node_plan.blocked))
    return len(runnable)


def _apply_guarded(node: Node, changes: list[Change], connection: Connection,
                   timeout: int) -> None:
    guard = Guard()
    for change in changes:
        guard += change.guard or Guard()
    token = confirm.new_token()
    steps = confirm.guarded_steps(token, timeout, guard, steps_of(changes))
    try:
        apply_node(node, steps, connection)
    except Unreachable:
        raise  # no session: nothing was armed or changed
    except NodeFailure as exc:
        # The node's window opened as the failed step ended (or its arming timer runs).
        until = time.monotonic() + timeout + REVERT_GRACE
        try:
            answer, lost = _settle(node, connection, confirm.revert_command(token, str(exc)),
                                   until)
        except NodeFailure as gone:
            raise RolledBack(f"{exc}; {gone}: the node undoes the change by itself") from None
        if answer.state == "none":
            raise  # failed before the switch was armed: nothing changed
        raise RolledBack(_because(str(exc), answer.reason, lost)) from None
    until = time.monotonic() + timeout + REVERT_GRACE
    try:
        answer, lost = _settle(node, connection, confirm.confirm_command(token), until)
    except NodeFailure as exc:
        raise RolledBack(f"{exc}: the node undoes the change by itself") from None
    if answer.state == "reverted":
        raise RolledBack(_because(answer.reason, answer.reason, lost))
    if answer.state != "confirmed":
        raise NodeFailure(f"its dead-man switch is gone ({answer.state}): check the node")


def _because(error: str, reason: str, lost: str) -> str:
    """Why a node rolled back: what failed, why the node reverted, why picl lost it."""
    parts = [error]
    if reason and reason != error:
        parts.append(reason)
    if lost:
        parts.append(f"no SSH connection after the change: {lost}")
    return "; ".join(parts)


def apply_plan(target: Target, plan: Plan) -> Iterator[Outcome]:
    """Converge every node of the plan that has changes; yield each node's outcome."""
    todo = {n.node: n for n in plan.nodes if n.changes and not n.error}
    nodes = {name: target.cluster.node(name) for name in todo}

    def converge(node: Node) -> int:
        return converge_node(node, todo[node.name], target.connection, target.confirm_timeout)

    yield from in_parallel(converge, nodes, APPLY_TIMEOUT)
