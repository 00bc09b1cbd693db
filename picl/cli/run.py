"""`picl run -- CMD...`: a command on every node at once, OK or FAILURE per node."""

from __future__ import annotations

import json
from contextlib import closing

import click
from rich.markup import escape

from picl.cli.env import Env
from picl.cli.nodeset import folded, node_set
from picl.cli.options import json_option, node_option, selected_nodes
from picl.exit import ExitStatus
from picl.operate.run import RUN_TIMEOUT, cluster_user, run
from picl.transport.connection import Connection
from picl.transport.remote import Reply


def status_line(reply: Reply, width: int) -> str:
    """`[OK]      node0  exit 0  0.3s`, or the failure and why."""
    name = escape(reply.node.ljust(width))
    if reply.ok:
        return f"[green]\\[OK][/]      {name}  exit 0  {reply.seconds:.1f}s"
    if reply.status is not None:
        last = reply.stderr.strip().splitlines()[-1:] if reply.stderr.strip() else []
        why = f": {escape(last[0])}" if last else ""
        return (f"[red]\\[FAILURE][/] {name}  exit {reply.status}  "
                f"{reply.seconds:.1f}s{why}")
    return f"[red]\\[FAILURE][/] {name}  {escape(reply.error)}"


# What --json prints, as the reference shows it (notation: picl.cli.converge.PLAN_JSON).
RUN_JSON = """\
{"command", "user", "ok",
 "nodes": [{"node", "ok", "status", "seconds", "error", "stdout", "stderr"}]}"""


def reply_document(reply: Reply) -> dict[str, object]:
    return {
        "node": reply.node, "ok": reply.ok, "status": reply.status,
        "seconds": round(reply.seconds, 2), "error": reply.error or None,
        "stdout": reply.stdout, "stderr": reply.stderr,
    }  # fmt: skip


def run_document(command: str, user: str | None, replies: list[Reply]) -> dict[str, object]:
    """What `run --json` prints: the command, who ran it, each node's reply."""
    return {"command": command, "user": user, "ok": all(r.ok for r in replies),
            "nodes": [reply_document(r) for r in replies]}


@click.command(name="run", context_settings={"ignore_unknown_options": True},
               epilog=f"\b\n--json prints:\n{RUN_JSON}")
@node_option
@click.option("--inline", is_flag=True,
              help="Show each node's output under it; identical outputs folded.")
@click.option("--timeout", type=click.FloatRange(min=1), default=RUN_TIMEOUT, show_default=True,
              metavar="S", help="Seconds a node has to finish; a late one is a failure.")
@json_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD...")
@click.pass_obj
def run_command(
    env: Env, nodes: tuple[str, ...], inline: bool, timeout: float, as_json: bool,
    command: tuple[str, ...],
) -> int:
    """Run CMD on every node (or those given) in parallel, as the cluster's user.

    CMD is shell text, as with ssh: `picl run -- 'df -h / | tail -1'`. It runs with `sh -c`
    in the user's home, as the spec's first personal user (uid >= 1000); a node without that
    user fails. Exit 0 only if CMD exits 0 on every node.
    """
    targets = selected_nodes(env, nodes)
    text = " ".join(command)
    replies: list[Reply] = []
    width = max(len(n.name) for n in targets)
    with closing(run(env.spec, targets, text, Connection.from_environ(), timeout)) as answers:
        for reply in answers:
            replies.append(reply)
            if not as_json:
                env.out.print(status_line(reply, width))
    order = [n.name for n in targets]
    replies.sort(key=lambda r: order.index(r.node))
    failed = [r.node for r in replies if not r.ok]
    if as_json:
        user = cluster_user(env.spec)
        click.echo(json.dumps(run_document(text, user.name if user else None, replies),
                              indent=2))
        return ExitStatus.ERROR if failed else ExitStatus.OK
    if inline:
        for names, output in folded(replies):
            if not output:
                continue
            header = f"{node_set(names)} ({len(names)})"
            rule = "-" * max(15, len(header))
            env.out.print(f"{rule}\n{escape(header)}\n{rule}", markup=True)
            env.out.print(output.rstrip("\n"), markup=False)
    if failed:
        env.err.print(f"picl run: failed on {node_set(failed)}", markup=False)
    return ExitStatus.ERROR if failed else ExitStatus.OK
