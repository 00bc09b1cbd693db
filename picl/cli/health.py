"""`picl check`: the health checks people run by hand, as a table of nodes."""

from __future__ import annotations

import json
from contextlib import closing

import click
from rich.markup import escape
from rich.table import Table

from picl.cli.env import Env
from picl.cli.nodeset import node_set
from picl.cli.options import json_option
from picl.exit import ExitStatus
from picl.operate.health import CHECKS, Check, Level, NodeHealth, check
from picl.transport.connection import Connection

COLOUR = {Level.OK: "green", Level.WARN: "yellow", Level.FAIL: "red"}


# What --json prints, as the reference shows it (notation: picl.cli.converge.PLAN_JSON).
CHECK_JSON = """\
{"ok", "nodes": [{"node", "level", "checks": [{"check", "level", "value", "detail"}]}]}"""


def health_document(nodes: list[NodeHealth]) -> dict[str, object]:
    """{ok, nodes[]: {node, level, checks[]: {check, level, value, detail}}}."""
    return {
        "ok": all(n.level is not Level.FAIL for n in nodes),
        "nodes": [
            {"node": n.node, "level": n.level.value,
             "checks": [{"check": c.name, "level": c.level.value, "value": c.value,
                         "detail": c.detail or None} for c in n.checks]}
            for n in nodes
        ],
    }  # fmt: skip


def health_table(nodes: list[NodeHealth]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    # A check no node ran (mpi without [mpi]) is no column: a row of "-" says nothing.
    ran = [name for name in CHECKS if any(n.check(name) for n in nodes)]
    for name in ("node", *ran):
        table.add_column(name)
    for n in nodes:
        cells = [escape(n.node)]
        for name in ran:
            c = n.check(name)
            cells.append("-" if c is None else
                         f"[{COLOUR[c.level]}]{c.level.value}[/] {escape(c.value)}")
        table.add_row(*cells)
    return table


@click.command(name="check", epilog=f"\b\n--json prints:\n{CHECK_JSON}")
@json_option
@click.pass_obj
def check_command(env: Env, as_json: bool) -> int:
    """Check every node's health, in one SSH round trip each; exit 1 if anything FAILs.

    Per node: SSH, the primary by address and by name, clock sync, CPU temperature, the spec's
    NFS shares mounted, root filesystem and load, each OK, WARN or FAIL. With [mpi], one
    rank on each computing node, started by mpirun on the primary as the personal user.

    Thresholds: temperature WARN 70°C, FAIL 80°C (the Pi throttles) or under-voltage; root
    filesystem WARN 80%, FAIL 95%; five-minute load per core WARN 2, FAIL 8; clock offset
    WARN 0.1s, FAIL 1s or unsynchronised.
    """
    cluster = env.spec
    with closing(check(cluster, Connection.from_environ())) as answers:
        found = {n.node: n for n in answers}
    nodes = [found[n.name] for n in cluster.nodes]
    failed = any(n.level is Level.FAIL for n in nodes)
    if as_json:
        click.echo(json.dumps(health_document(nodes), indent=2))
        return ExitStatus.ERROR if failed else ExitStatus.OK
    env.out.print(health_table(nodes))
    notes = findings(nodes)
    if notes:
        env.out.print()
    for names, c in notes:
        env.out.print(f"{escape(node_set(names))} {c.name}: [{COLOUR[c.level]}]{c.level.value}[/] "
                      f"{escape(c.detail or c.value)}")
    return ExitStatus.ERROR if failed else ExitStatus.OK


def findings(nodes: list[NodeHealth]) -> list[tuple[list[str], Check]]:
    """Every WARN and FAIL with why, the nodes that share one folded together, failures first."""
    found: dict[tuple[str, Level, str], tuple[list[str], Check]] = {}
    for n in nodes:
        for c in n.checks:
            if c.level is not Level.OK:
                key = (c.name, c.level, c.detail or c.value)
                found.setdefault(key, ([], c))[0].append(n.node)
    order = {Level.FAIL: 0, Level.WARN: 1}
    return sorted(found.values(), key=lambda item: order[item[1].level])
