"""`picl plan` and `picl apply`: what would change, per node and resource; then change it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape

from picl.cli.env import Env, person
from picl.cli.options import json_option, node_option, selected_nodes
from picl.deploy.changes import SENSITIVE, Change, NodePlan
from picl.deploy.lock import Holder, LockHeld, as_duration, converging
from picl.errors import PiclError
from picl.exit import ExitStatus
from picl.spec.checks import duration_seconds
from picl.transport.connection import Connection, seconds_setting

if TYPE_CHECKING:  # pyinfra loads only when a command needs it: `picl --help` stays fast
    from picl.deploy.converge import Outcome, Target
    from picl.deploy.plan import Plan
    from picl.spec import Cluster

SYMBOL = {"create": ("+", "green"), "update": ("~", "yellow"), "remove": ("-", "red")}
CONFIRM_TIMEOUT_ENV = "PICL_CONFIRM_TIMEOUT"
DEFAULT_CONFIRM_TIMEOUT = 60  # as deploy.confirm.DEFAULT_TIMEOUT, without loading pyinfra
# Long enough for an agent's cycle that changes nothing; an apply in progress is named.
DEFAULT_LOCK_TIMEOUT = "1m"

# The documents --json prints, as the reference shows them (a test holds the code to them):
# `{"a", "b": SHAPE}` an object's keys, `[SHAPE]` a list of such, `[...]` a list of strings.
PLAN_JSON = """\
{"nodes": [{"node", "error",
            "changes": [{"resource", "action", "attributes": [{"name", "before", "after"}],
                         "diff", "blocked"}]}],
 "summary": {"create", "update", "remove", "blocked", "nodes", "unreachable"},
 "warnings": [...]}"""
APPLY_JSON = PLAN_JSON.removesuffix("}") + """,
 "applied": [{"node", "ok", "error", "rolled_back", "seconds"}]}"""



def target(env: Env, nodes: tuple[str, ...]) -> Target:
    from picl.deploy.converge import Target

    cluster = env.cluster
    selected_nodes(env, nodes, cluster)  # a name that is no node stops here
    spec_dir = env.spec_path.resolve().parent
    return Target(
        cluster=cluster,
        connection=Connection.from_environ(),
        secrets_file=env.secrets_file,
        spec_dir=spec_dir,
        only=list(nodes),
        led_service=led_service(cluster),
        confirm_timeout=confirm_timeout(),
    )


def confirm_timeout() -> int:
    """Seconds a node waits for picl to confirm a risky change: $PICL_CONFIRM_TIMEOUT or 60."""
    return seconds_setting(os.environ, CONFIRM_TIMEOUT_ENV, DEFAULT_CONFIRM_TIMEOUT, lowest=10)


def lock_timeout(ctx: click.Context, param: click.Parameter, value: str) -> int:
    """--lock-timeout as seconds: a duration like '30s', '5m' or '1h'."""
    try:
        return duration_seconds(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def spec_revision(spec: Path) -> str:
    """The commit the spec's repository is at, as `branch@sha1:...`; '' outside git.

    git itself refuses a repository someone else owns (`safe.directory`): then '' too.
    """
    try:
        said = subprocess.run(["git", "-C", str(spec.resolve().parent), "rev-parse",
                               "--abbrev-ref", "HEAD", "HEAD"], capture_output=True, text=True,
                              timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return ""
    words = said.stdout.split()
    if said.returncode != 0 or len(words) != 2:
        return ""
    return f"{words[0]}@sha1:{words[1][:12]}"


def led_service(cluster: Cluster) -> dict[str, str]:
    """The LED service's files for nodes with a strip (lab nodes draw to their journal)."""
    from picl.reconciler.strips import service_files

    return service_files(cluster, "terminal" if os.environ.get("PICL_IN_LAB") else "blinkt")


def change_document(change: Change) -> dict[str, Any]:
    return {
        "resource": change.resource,
        "action": change.action,
        "attributes": [
            dict(zip(("before", "after"), a.shown(), strict=True), name=a.name)
            if a.sensitive else {"name": a.name, "before": a.before, "after": a.after}
            for a in change.attributes
        ],
        "diff": SENSITIVE if change.sensitive else change.diff,
        "blocked": change.blocked or None,
    }


def plan_document(plan: Plan, warnings: list[str]) -> dict[str, Any]:
    """The plan as JSON: `nodes[]` of {node, error, changes[]}, `summary`, `warnings` (every
    warning the command gave, as on stderr)."""
    return {
        "nodes": [
            {"node": n.node, "error": n.error,
             "changes": [change_document(c) for c in n.changes]}
            for n in plan.nodes
        ],
        "summary": {**plan.summary(), "nodes": len(plan.nodes),
                    "unreachable": len(plan.failed)},
        "warnings": warnings,
    }


def apply_document(plan: Plan, outcomes: list[Outcome], warnings: list[str]) -> dict[str, Any]:
    """What apply did as JSON: the plan's document and `applied[]`, one entry per node."""
    return {
        **plan_document(plan, warnings),
        "applied": [
            {"node": o.node, "ok": o.ok, "error": o.error or None, "rolled_back": o.rolled_back,
             "seconds": round(o.seconds, 2)}
            for o in outcomes
        ],
    }


def summary_line(plan: Plan) -> str:
    total = plan.summary()
    line = (f"Plan: {total['create']} to add, {total['update']} to change, "
            f"{total['remove']} to remove on {len(plan.nodes)} node"
            f"{'s' * (len(plan.nodes) != 1)}")
    if plan.blocked:
        line += f"; {plan.blocked} blocked"
    if plan.failed:
        line += f"; {len(plan.failed)} unreachable"
    return line


def show_node(env: Env, node: NodePlan) -> None:
    out = env.out
    if node.error:
        out.print(f"[bold]{node.node}[/]: [red]{escape(node.error)}[/]")
        return
    if not node.changes:
        out.print(f"[bold]{node.node}[/]: [dim]no changes[/]")
        return
    out.print(f"[bold]{node.node}[/]")
    for change in node.changes:
        if change.blocked:
            out.print(f"  [red]! {escape(change.resource)}: blocked: {escape(change.blocked)}[/]")
            continue
        symbol, colour = SYMBOL[change.action]
        out.print(f"  [{colour}]{symbol} {escape(change.resource)}[/]")
        for attribute in change.attributes:
            before, after = attribute.shown()
            out.print(f"      {escape(attribute.name)}: {escape(before)} -> {escape(after)}")
        if change.diff and not change.sensitive:
            for line in change.diff.splitlines():
                style = "green" if line.startswith("+") else "red" if line.startswith("-") else ""
                text = f"      {escape(line)}"
                out.print(f"[{style}]{text}[/]" if style else text)


def warn(env: Env, plan: Plan) -> None:
    """The plan's warnings, on stderr whatever the output (and with --json, in it too)."""
    for warning in plan.warnings:
        env.warn(warning)


def show_plan(env: Env, plan: Plan) -> None:
    for node in plan.nodes:
        show_node(env, node)
    env.out.print(summary_line(plan) if plan.changes or plan.failed else
                  "No changes: the cluster matches the spec.")


@click.command(epilog=f"\b\n--json prints:\n{PLAN_JSON}")
@node_option
@json_option
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 2 when there are changes (0 none, 1 error).")
@click.pass_obj
def plan(env: Env, nodes: tuple[str, ...], as_json: bool, detailed_exitcode: bool) -> int:
    """Show what apply would change on each node, and why.

    A plan changes nothing, so it takes no lock: it runs while an apply or the agent's
    cycle converges, and shows the nodes as they are at that moment. A change apply will not
    make is `blocked`, with why (a foreign fstab line in the way): the plan exits 1. Warnings
    (a GitHub user's keys from the cache, no secrets file) go to stderr, and with --json into
    the document's `warnings` too.
    """
    from picl.deploy.converge import make_plan

    result = make_plan(target(env, nodes))
    warn(env, result)
    if as_json:
        click.echo(json.dumps(plan_document(result, env.warnings), indent=2, default=str))
    else:
        show_plan(env, result)
    if result.failed or result.blocked:
        return ExitStatus.ERROR
    return ExitStatus.CHANGES if detailed_exitcode and result.changes else ExitStatus.OK


def _confirm(env: Env, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise PiclError("apply: no terminal to confirm on; run with --yes to apply")
    if not click.confirm("Apply these changes?", default=False, err=True):
        raise PiclError("apply: cancelled, nothing changed")


def _report(env: Env, outcome: Outcome, plan: Plan) -> None:
    count = next(len(n.changes) for n in plan.nodes if n.node == outcome.node)
    if outcome.ok:
        env.out.print(f"[bold]{outcome.node}[/]: [green]converged[/] "
                      f"({count} change{'s' * (count != 1)}, {outcome.seconds:.1f}s)")
    elif outcome.rolled_back:
        env.out.print(f"[bold]{outcome.node}[/]: [red]ROLLED BACK[/]: {escape(outcome.error)}")
    else:
        env.out.print(f"[bold]{outcome.node}[/]: [red]FAILED[/]: {escape(outcome.error)}")


@click.command(epilog=f"\b\n--json prints:\n{APPLY_JSON}")
@node_option
@click.option("--yes", is_flag=True, help="Apply without asking.")
@json_option
@click.option("--lock-timeout", "wait", default=DEFAULT_LOCK_TIMEOUT, show_default=True,
              metavar="DURATION", callback=lock_timeout,
              help="How long to wait while the agent or another apply converges the cluster "
                   "('0s': not at all); then fail, saying who holds the lock.")
@click.pass_obj
def apply(env: Env, nodes: tuple[str, ...], yes: bool, as_json: bool, wait: int) -> int:
    """Converge the nodes to the spec: shows the plan, asks, applies in parallel.

    Runs as root (the lock it shares with the agent is root's). One converge at a time per
    cluster: while the agent's cycle or another apply converges it, apply waits up to
    --lock-timeout, then fails naming who holds the lock (what, pid, host, since when,
    which revision).

    Exit 1 if any node failed or was `rolled_back` (a risky change not confirmed: undone by the
    node itself). Warnings go to stderr, and with --json into the document's `warnings` too.
    """
    from picl.deploy.converge import apply_plan, generate_secrets, make_plan

    run = target(env, nodes)

    def waiting(holder: Holder | None) -> None:
        env.warn(f"waiting up to {as_duration(wait)} for the converge lock, held by "
                 f"{escape(str(holder or 'another process'))}")

    with ExitStack() as held:
        try:
            held.enter_context(converging(run.cluster.cluster.name, f"picl apply by {person()}",
                                          spec_revision(env.spec_path), wait, waiting))
        except LockHeld as exc:
            raise PiclError(f"{exc}; --lock-timeout DURATION waits longer") from None
        generated = generate_secrets(run)
        result = make_plan(run)
        result.warnings[:0] = generated
        warn(env, result)
        if not as_json:
            show_plan(env, result)
        outcomes: list[Outcome] = []
        if result.changes:
            _confirm(env, yes)
            for outcome in apply_plan(run, result):
                outcomes.append(outcome)
                if not as_json:
                    _report(env, outcome, result)
    failed = [o for o in outcomes if not o.ok]
    if as_json:
        click.echo(json.dumps(apply_document(result, outcomes, env.warnings), indent=2,
                              default=str))
    elif result.changes:
        done = len(outcomes) - len(failed)
        env.out.print(f"Apply: {done} node{'s' * (done != 1)} converged, {len(failed)} failed"
                      + (f", {len(result.failed)} unreachable" if result.failed else ""))
    return ExitStatus.ERROR if failed or result.failed else ExitStatus.OK
