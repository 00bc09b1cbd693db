"""`picl reboot` and `picl shutdown`: the workers first, the primary last, each waited for."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Generator, Iterable
from contextlib import closing

import click
from rich.markup import escape

from picl.cli.env import Env
from picl.cli.options import node_option, selected_nodes
from picl.errors import PiclError
from picl.exit import ExitStatus
from picl.operate.power import Halted, PowerEvent, reboot, shut_down, silent, split
from picl.spec import Node
from picl.transport.connection import Connection

COLOUR = {"back": "green", "off": "green", "already off": "green", "down": "dim",
          "failed": "red", "left running": "red"}


def confirm(question: str, yes: bool, command: str) -> None:
    """Ask on a terminal; without one, only --yes goes ahead."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise PiclError(f"{command}: no terminal to confirm on; run with --yes")
    if not click.confirm(question, default=False, err=True):
        raise PiclError(f"{command}: cancelled, nothing done")


def event_line(event: PowerEvent) -> str:
    """`12:00:03 node1: back after 14.2s (boot 3f2a9c1e)`."""
    clock = time.strftime("%H:%M:%S", time.localtime(event.at))
    what = event.what
    if what in ("back", "down", "off") and event.seconds:
        what += f" after {event.seconds:.1f}s"
    colour = COLOUR.get(event.what)
    shown = f"[{colour}]{escape(what)}[/]" if colour else escape(what)
    detail = f" ({escape(event.detail)})" if event.detail else ""
    return f"{clock} [bold]{escape(event.node)}[/]: {shown}{detail}"


def follow(env: Env, events: Generator[PowerEvent, None, None]) -> list[PowerEvent]:
    """Print each event as it happens; all of them, once done."""
    seen = []
    with closing(events):
        for event in events:
            seen.append(event)
            env.out.print(event_line(event))
    return seen


def lab_halted() -> Halted | None:
    """Inside `picl --lab`: a node is off when its container has exited.

    A lab's network outlives its nodes (their addresses still answer ping), so the lab's
    own record of its containers stands in for a board's dark NIC.
    """
    name = os.environ.get("PICL_IN_LAB")
    if not name:
        return None
    from picl import lab

    def halted(node: Node) -> bool:
        status = lab.status(name, check_ssh=False)
        running = {n.name for n in status.nodes if n.running} if status else set()
        return node.name not in running

    return halted


def names(nodes: Iterable[Node]) -> str:
    return ", ".join(n.name for n in nodes)


@click.command(name="reboot")
@node_option
@click.option("--yes", is_flag=True, help="Reboot without asking.")
@click.pass_obj
def reboot_command(env: Env, nodes: tuple[str, ...], yes: bool) -> int:
    """Reboot every node (or those given) and wait until each is back.

    The workers go first; the primary reboots once they are all back, so no worker unmounts
    its NFS share from a server that is already gone. A node is back when it answers SSH on a
    new boot; one that is not back within 5 minutes (more where PICL_CONNECT_TIMEOUT allows a
    slow connection) is a failure, and the primary is then left running.
    """
    targets = selected_nodes(env, nodes)
    workers, primary = split(env.spec, targets)
    order = names(workers) + (f", then {primary[0].name}" if workers and primary else
                              primary[0].name if primary else "")
    confirm(f"Reboot {order}?", yes, "reboot")
    events = follow(env, reboot(env.spec, targets, Connection.from_environ()))
    back = [e for e in events if e.what == "back"]
    failed = [e for e in events if e.failed]
    env.out.print(f"Reboot: {len(back)} back, {len(failed)} failed")
    return ExitStatus.ERROR if failed else ExitStatus.OK


@click.command(name="shutdown")
@click.option("--yes", is_flag=True, help="Power off without asking.")
@click.pass_obj
def shutdown_command(env: Env, yes: bool) -> int:
    """Power off every node safely: the workers, then the primary once they have halted.

    A node has halted when it answers neither SSH's port nor ping (in the lab: when its
    container has exited). If a worker cannot be powered off, or does not halt within 3
    minutes, the primary is left running. Cut the power only once it says all nodes are off.
    """
    cluster = env.spec
    workers, primary = split(cluster, list(cluster.nodes))
    confirm(f"Power off {names(workers)}, then {primary[0].name}?" if workers else
            f"Power off {primary[0].name}?", yes, "shutdown")
    halted = lab_halted() or silent
    events = follow(env, shut_down(cluster, Connection.from_environ(), halted))
    failed = [e for e in events if e.failed]
    if failed:
        env.out.print(f"Shutdown: {len(failed)} failed; do not cut the power yet")
        return ExitStatus.ERROR
    env.out.print("Shutdown: all nodes are off; the power can be cut")
    return ExitStatus.OK
