"""`picl agent install|run|suspend|resume|reconcile`, `picl status`, `picl history`.

Run on the primary, they act on the agent there; anywhere else, on the spec's primary over
SSH (with `--lab`, the lab's).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from picl.cli.env import Env, person
from picl.cli.options import json_option
from picl.errors import PiclError
from picl.exit import ExitStatus
from picl.reconciler import control
from picl.reconciler.client import AgentClient
from picl.reconciler.paths import UNIT_NAME, Paths
from picl.reconciler.status import (
    READY,
    RECONCILING,
    STALLED,
    SUSPENDED,
    Cycle,
    NodeStatus,
    Status,
    short,
)

ACK_TIMEOUT = 15.0  # seconds for the agent to show a suspend or resume in its status
POLL = 0.5
STATE_COLOUR = {"converged": "green", "drifted": "yellow", "applying": "cyan", "failed": "red",
                "unreachable": "red", "unknown": "dim"}


def _agent(env: Env) -> AgentClient:
    """The agent here, on the primary; else the spec's primary's (the rest of the spec unread)."""
    paths = Paths.from_environ()
    if AgentClient.here(paths):
        return AgentClient(paths)
    return AgentClient(paths, env.primary)


def clock(moment: float) -> str:
    """A moment as the person reading it says it: their local time of day."""
    return time.strftime("%H:%M:%S", time.localtime(moment))


def _uplink() -> Path | None:
    """The network picl was started in, when `--lab` moved it into the lab's (no uplink there:
    pip downloads the primary's wheels out here)."""
    parent = Path(f"/proc/{os.getppid()}/ns/net")
    try:
        moved = os.readlink(parent) != os.readlink("/proc/self/ns/net")
    except OSError:
        return None
    return parent if moved else None


def _who() -> str:
    return f"{person()}@{socket.gethostname()}"


def headline(status: Status) -> tuple[str, str, str]:
    """(word, colour, message) for the agent's state as a whole: what a person needs first."""
    if status.suspended is not None:
        return "Suspended", "magenta", status.condition(SUSPENDED).message
    if status.condition(STALLED).status == "True":
        return "Stalled", "red", status.condition(STALLED).message
    if status.cycle and status.cycle.finished is None:
        return "Reconciling", "cyan", status.condition(RECONCILING).message
    ready = status.condition(READY)
    if ready.status == "True":
        return "Ready", "green", ready.message
    word, colour = ("Not ready", "red") if ready.status == "False" else ("Unknown", "yellow")
    return word, colour, ready.message


def node_detail(node: NodeStatus) -> str:
    """A node's line after its state: why it failed, what drifted, how much was applied."""
    if node.error:
        return node.error
    if node.state == "converged":
        count = len(node.changes)
        return f"{count} change{'s' * (count != 1)} applied" if count else ""
    return ", ".join(node.changes)


def show_status(env: Env, status: Status, where: str) -> None:
    out = env.out
    word, colour, message = headline(status)
    out.print(f"[bold]{escape(status.cluster or '?')}[/] ({escape(where)}): "
              f"[bold {colour}]{word}[/] — {escape(message)}")
    for condition in status.conditions:
        since = f" (since {clock(condition.since)})" if condition.since else ""
        message = f"  {escape(condition.message)}" if condition.message else ""
        out.print(f"  {condition.type:<12} {condition.status:<7} {escape(condition.reason)}"
                  f"{message}[dim]{since}[/]")
    revision = status.revision
    out.print(f"  revision     observed {short(revision.observed, status.branch)}, "
              f"attempted {short(revision.attempted, status.branch)}, "
              f"applied {short(revision.applied, status.branch)}")
    out.print(f"  mode         {status.mode}")
    if status.metrics:
        out.print(f"  metrics      {escape(status.metrics)}")
    if status.cycle:
        out.print(f"  last cycle   {cycle_line(status.cycle)}")
    if status.next_cycle and status.suspended is None:
        out.print(f"  next cycle   at {clock(status.next_cycle)}")
    for node in status.nodes:
        out.print(f"  {escape(node.node):<12} [{STATE_COLOUR.get(node.state, 'dim')}]"
                  f"{node.state:<11}[/] {escape(node_detail(node))}")


def cycle_line(cycle: Cycle) -> str:
    took = f", {cycle.seconds:.1f}s" if cycle.seconds is not None else ""
    return (f"{cycle.number} ({escape(cycle.trigger)}) at {clock(cycle.started)}{took}: "
            f"{cycle.outcome}")


def _status_document(status: Status, where: str) -> dict[str, Any]:
    document = status.to_json()
    word, _, _ = headline(status)
    return {"state": word.lower().replace(" ", "-"), "where": where, **document}


@click.command(name="status")
@json_option
@click.pass_obj
def status_command(env: Env, as_json: bool) -> int:
    """The agent's status: revisions, conditions, nodes.

    \b
    Ready        every node matches the applied revision
    Reconciling  a cycle is running, or a retry is due
    Stalled      the newest commit cannot be applied (invalid, unsigned, rewritten history)
    Suspended    `picl agent suspend`: nothing converges
    RolledBack   the last cycle's risky changes were undone by a node (a failure)

    On the primary it reads the agent's status file; elsewhere, the spec's primary's over SSH.
    """
    agent = _agent(env)
    status, _ = agent.status()
    if as_json:
        click.echo(json.dumps(_status_document(status, agent.where), indent=2))
    else:
        show_status(env, status, agent.where)
    return ExitStatus.OK


@click.command(name="history")
@json_option
@click.option("-n", "--last", "count", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many cycles, newest last.")
@click.pass_obj
def history_command(env: Env, as_json: bool, count: int) -> int:
    """The agent's last cycles: when, why, which revision, how each ended."""
    agent = _agent(env)
    status, cycles = agent.status()
    cycles = cycles[-count:]
    if as_json:
        from dataclasses import asdict

        click.echo(json.dumps({"where": agent.where, "cycles": [asdict(c) for c in cycles]},
                              indent=2))
        return ExitStatus.OK
    if not cycles:
        env.out.print("no cycles yet")
    for cycle in cycles:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(cycle.started))
        took = f"{cycle.seconds:6.1f}s" if cycle.seconds is not None else "      -"
        env.out.print(f"{cycle.number:>5}  {started}  {took}  {cycle.outcome:<11} "
                      f"{short(cycle.revision, status.branch):<26} "
                      f"{escape(cycle.trigger)}: {escape(cycle.message)}")
    return ExitStatus.OK


@click.group()
def agent() -> None:
    """The agent on the primary: git push changes the cluster, drift is repaired, on boot too."""


@agent.command()
@click.pass_obj
def install(env: Env) -> int:
    """Make the spec's primary the control node (run from the operator's machine).

    picl into its own venv there (offline: a wheelhouse built here for its platform), the
    repository to push to (/srv/picl/cluster.git), the secrets file, the agent's SSH key
    authorised on every node, and the agent's unit, enabled on boot. Again: upgrades in place.
    """
    from picl.reconciler.install import install as run_install
    from picl.transport.connection import Connection

    cluster = env.cluster
    secrets = env.secrets_file
    in_lab = bool(os.environ.get("PICL_IN_LAB"))
    done = run_install(cluster, Connection.from_environ(), secrets,
                       led_backend="terminal" if in_lab else "blinkt",  # lab LEDs: the journal
                       progress=lambda message: env.err.print(f"[dim]{escape(message)}[/]"),
                       pip_network=_uplink() if in_lab else None,
                       spec_dir=env.spec_path.resolve().parent)
    if not done.secrets:
        env.warn(f"{secrets} not found: no secrets copied to {done.primary} "
                 "(passwords and Wi-Fi keys stay as they are on the nodes)")
    env.out.print(f"[bold]{done.primary}[/]: [green]the agent runs[/] ({UNIT_NAME}, enabled on "
                  f"boot); picl for {done.platform} from {done.wheels} wheels")
    env.out.print(f"the agent's key is authorised on {', '.join(done.nodes)}: "
                  f"{escape(done.agent_key)}")
    env.out.print("Push the cluster's repository to it:")
    env.out.print(f"  git remote add cluster {done.remote_url}")
    env.out.print(f"  git push cluster {cluster.agent.branch}")
    return ExitStatus.OK


@agent.command()
def run() -> int:
    """Run the agent (what its unit runs on the primary): logs go to stderr, the journal.

    Only where `picl agent install` installed it: anywhere else it refuses and says what to run.
    """
    from picl.reconciler.agent import run as run_agent
    from picl.reconciler.loop import Settings
    from picl.reconciler.source import upstream_ssh
    from picl.transport.connection import Connection

    paths = Paths.from_environ()
    if os.environ.get("PICL_IN_LAB"):
        raise PiclError("agent run: the agent runs on the lab's primary, not here: install it "
                        "there with `picl --lab agent install`, then `picl --lab status`")
    if not paths.unit.is_file():
        raise PiclError(f"agent run: no agent was installed on this machine ({paths.unit} is "
                        f"missing); it is what {UNIT_NAME} runs on the primary: install it with "
                        "`picl agent install` from your machine, then `picl status`")
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("watchdog", "git", "paramiko", "pyinfra"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    connection = Connection.from_environ()
    # The upstream is fetched with the agent's key (add it there as a read-only deploy key).
    settings = Settings(branch=os.environ.get("PICL_AGENT_BRANCH", "main"),
                        led_backend=os.environ.get("PICL_LED_BACKEND", "blinkt"),
                        ssh_command=upstream_ssh(paths.upstream_known_hosts, connection.key),
                        cluster=os.environ.get("PICL_CLUSTER", ""))
    run_agent(paths, connection, settings)
    return ExitStatus.OK


def _until(agent: AgentClient, done: Callable[[Status], bool], timeout: float) -> Status | None:
    """Look at the agent's status until `done` says so (bounded); the status, or None."""
    deadline = time.monotonic() + timeout
    while True:
        status, _ = agent.status()
        if done(status):
            return status
        if time.monotonic() > deadline:
            return None
        time.sleep(POLL)


@agent.command()
@click.pass_obj
def suspend(env: Env) -> int:
    """Pause the agent: nothing converges until `picl agent resume` (it says so everywhere)."""
    agent = _agent(env)
    agent.run(control.suspend_command(agent.paths.control, _who()), "suspending the agent")
    if _until(agent, lambda s: s.suspended is not None, ACK_TIMEOUT) is None:
        raise PiclError(f"{agent.where}: asked the agent to suspend, but its status does not "
                        f"say so yet: is it running? (systemctl status {UNIT_NAME})")
    env.out.print(f"{agent.where}: [magenta]suspended[/]: nothing converges until "
                  "`picl agent resume`")
    return ExitStatus.OK


@agent.command()
@click.pass_obj
def resume(env: Env) -> int:
    """Let a suspended agent converge again, starting with a cycle now."""
    agent = _agent(env)
    agent.run(control.resume_command(agent.paths.control), "resuming the agent")
    if _until(agent, lambda s: s.suspended is None, ACK_TIMEOUT) is None:
        raise PiclError(f"{agent.where}: asked the agent to resume, but its status still says "
                        f"suspended: is it running? (systemctl status {UNIT_NAME})")
    env.out.print(f"{agent.where}: resumed; a cycle is starting")
    return ExitStatus.OK


@agent.command()
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait for the cycle to end and show how it did.")
@click.option("--timeout", type=click.FloatRange(min=1), default=600, show_default=True,
              metavar="S", help="How long to wait for it.")
@click.pass_obj
def reconcile(env: Env, wait: bool, timeout: float) -> int:
    """Run a cycle now: fetch, verify, plan, apply; exit 1 unless it leaves the cluster Ready."""
    agent = _agent(env)
    before, _ = agent.status()
    if before.suspended is not None:
        raise PiclError(f"{agent.where}: the agent is suspended; `picl agent resume` first")
    number = before.cycle.number if before.cycle else 0
    agent.run(control.reconcile_command(agent.paths.control), "asking for a cycle")
    if not wait:
        env.out.print(f"{agent.where}: a cycle was asked for")
        return ExitStatus.OK
    status = _until(agent, lambda s: bool(s.cycle and s.cycle.number > number
                                          and s.cycle.finished is not None), timeout)
    if status is None or status.cycle is None:
        raise PiclError(f"{agent.where}: no cycle ended within {timeout:.0f}s")
    env.out.print(f"{agent.where}: cycle {cycle_line(status.cycle)}: "
                  f"{escape(status.condition(READY).message)}")
    return ExitStatus.OK if status.ready else ExitStatus.ERROR
