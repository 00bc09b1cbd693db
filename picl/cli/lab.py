"""`picl lab ...`: a local cluster of real systemd nodes built from the spec."""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Callable
from typing import Any

import click

from picl import lab as labs
from picl.cli.env import Env
from picl.cli.options import json_option
from picl.errors import PiclError
from picl.exit import ExitStatus

name_option = click.option(
    "--name",
    metavar="NAME",
    envvar="PICL_LAB_NAME",
    help="The lab's name [env PICL_LAB_NAME; default: the spec's cluster name]. "
    "Two names, two labs of one spec side by side.",
)


class _Notices(logging.Handler):
    """The lab logs what a user should know (a limit raised, a power cut); show it on stderr."""

    def __init__(self, env: Env):
        super().__init__(logging.DEBUG if env.verbose else logging.WARNING)
        self.env = env

    def emit(self, record: logging.LogRecord) -> None:
        self.env.err.print(f"[dim]lab:[/] {record.getMessage()}", markup=True)


def _with_notices(command: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(env: Env, *args: Any, **kwargs: Any) -> Any:
        logger = logging.getLogger("picl.lab")
        handler = _Notices(env)
        logger.addHandler(handler)
        previous = logger.level
        logger.setLevel(handler.level)
        try:
            return command(env, *args, **kwargs)
        finally:
            logger.removeHandler(handler)
            logger.setLevel(previous)

    wrapper.__name__ = command.__name__
    wrapper.__doc__ = command.__doc__
    return wrapper


@click.group()
def lab() -> None:
    """A local cluster of real systemd nodes built from the spec (root, Linux)."""


@lab.command()
@name_option
@click.option(
    "--os",
    "releases",
    multiple=True,
    metavar="[NODE=]RELEASE",
    help="Raspberry Pi OS Lite release on every node, or on NODE: bookworm (default), trixie, "
    "bullseye. Repeat for a mixed lab. A node that has another is flashed again.",
)
@click.option(
    "--arch",
    "arches",
    multiple=True,
    metavar="[NODE=]ARCH",
    help="amd64 (this machine's, default) or arm64 (emulated by qemu-user), on every node or NODE.",
)
@click.option(
    "--vm",
    "vms",
    multiple=True,
    is_flag=False,
    flag_value="",
    metavar="[NODE]",
    help="Boot every node, or NODE, as a qemu virtual machine with Debian's kernel (NFS, fstab "
    "at boot, real reboots): slower, ~575 MB each. Repeat for several nodes.",
)
@click.option("--timeout", type=float, metavar="SECONDS", help="How long to wait for SSH.")
@click.pass_obj
@_with_notices
def up(
    env: Env,
    name: str | None,
    releases: tuple[str, ...],
    arches: tuple[str, ...],
    vms: tuple[str, ...],
    timeout: float | None,
) -> ExitStatus:
    """Build and boot the lab (or mend it); returns once every node answers SSH."""
    cards = labs.Cards.parse(releases, arches, vms)
    status = labs.up(env.spec, name, warn=env.warn, timeout=timeout, cards=cards,
                     spec=env.spec_path)
    env.out.print(
        f"lab {status.name}: {len(status.nodes)} nodes up on {status.subnet} "
        f"(network namespace {status.namespace})"
    )
    for n in status.nodes:
        env.out.print(f"  {n.name:<12} {n.address:<15} {n.release} {n.arch} {n.machine}")
    first = status.nodes[0]
    env.out.print(
        f"try: picl lab ssh {first.name}   or   picl lab exec -- ssh {first.address}", style="dim"
    )
    return ExitStatus.OK


@lab.command()
@name_option
@click.option("--all", "everything", is_flag=True, help="Every picl lab on this machine.")
@click.pass_obj
@_with_notices
def down(env: Env, name: str | None, everything: bool) -> ExitStatus:
    """Stop the lab's nodes through their own init and remove all of it."""
    if everything:
        names = labs.down_all()
        env.out.print(f"removed: {', '.join(names)}" if names else "no lab was left")
        return ExitStatus.OK
    lab_name = env.lab_name(name)
    removed = labs.down(lab_name)
    env.out.print(f"lab {lab_name}: {'removed' if removed else 'there was none'}")
    return ExitStatus.OK


@lab.command()
@name_option
@json_option
@click.pass_obj
def status(env: Env, name: str | None, as_json: bool) -> ExitStatus:
    """Per node: address, release and architecture, what runs it (container, or a VM on kvm or
    tcg), running, answering SSH.

    Exit 1 unless every node answers."""
    lab_name = env.lab_name(name)
    state = labs.status(lab_name)
    healthy = bool(state and state.up and all(n.running and n.ssh for n in state.nodes))
    if as_json:
        document = state.to_json() if state else {"lab": lab_name, "up": False, "nodes": []}
        click.echo(json.dumps(document, indent=2))
        return ExitStatus.OK if healthy else ExitStatus.ERROR
    if state is None:
        env.err.print(f"lab {lab_name}: none on this machine (`picl lab up`)", markup=False)
        return ExitStatus.ERROR
    env.out.print(f"lab {state.name}: network {state.address} in namespace {state.namespace}")
    env.out.print(f"  apt proxy: {state.proxy or 'not running'}")
    for n in state.nodes:
        power = "[green]running[/]" if n.running else "[red]off[/]"
        answer = "[green]ssh ok[/]" if n.ssh else "[red]no ssh[/]"
        card = f"{n.release} {n.arch}"
        env.out.print(
            f"  {n.name:<12} {n.address:<15} {card:<15} {n.machine:<9} {power}  {answer}",
            markup=True,
        )
    return ExitStatus.OK if healthy else ExitStatus.ERROR


@lab.command(context_settings={"ignore_unknown_options": True})
@name_option
@click.argument("node")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def ssh(env: Env, name: str | None, node: str, command: tuple[str, ...]) -> int:
    """SSH to NODE as root (host key checked), or run COMMAND there: ssh NODE -- CMD..."""
    argv = labs.ssh_argv(env.lab_name(name), node, list(command), interactive=not command)
    return subprocess.call(argv)


@lab.command(name="exec", context_settings={"ignore_unknown_options": True})
@name_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def exec_(env: Env, name: str | None, command: tuple[str, ...]) -> int:
    """Run COMMAND inside the lab's network, where `ssh ADDRESS` reaches any node: exec -- CMD..."""
    argv, environment = labs.exec_argv(env.lab_name(name), list(command))
    try:
        return subprocess.call(argv, env=environment)
    except FileNotFoundError as exc:
        raise PiclError(f"cannot run {command[0]!r}: {exc.strerror}") from None


@lab.command()
@name_option
@click.argument("node")
@click.pass_obj
@_with_notices
def kill(env: Env, name: str | None, node: str) -> ExitStatus:
    """Cut NODE's power: no shutdown; its disk stays as it is."""
    cut = labs.kill(env.lab_name(name), node)
    env.out.print(f"{node}: {'power cut' if cut else 'already off'}")
    return ExitStatus.OK


@lab.command()
@name_option
@click.argument("node")
@click.option("--timeout", type=float, metavar="SECONDS", help="How long to wait for SSH.")
@click.pass_obj
@_with_notices
def start(env: Env, name: str | None, node: str, timeout: float | None) -> ExitStatus:
    """Boot NODE again with its disk as it was; returns once it answers SSH."""
    booted = labs.start(env.lab_name(name), node, timeout=timeout)
    env.out.print(f"{node}: {'booted' if booted else 'already on'}, answers SSH")
    return ExitStatus.OK


@lab.command()
@name_option
@click.argument("node")
@click.pass_obj
def console(env: Env, name: str | None, node: str) -> ExitStatus:
    """Show NODE's console as it printed it (a VM's serial line): what its screen would show."""
    path = labs.console_log(env.lab_name(name), node)
    try:
        click.echo(path.read_text(errors="replace"), nl=False)
    except FileNotFoundError:
        raise PiclError(f"{node}: no console yet ({path}): it has not booted") from None
    return ExitStatus.OK
