"""picl's command line. The one place that prints and turns errors into exit codes."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Sequence

import click

from picl.cli.env import Env, console
from picl.errors import PiclError
from picl.exit import ExitStatus

# name -> "module:command": a command's module (and what it needs: pyinfra, pydantic, the
# lab) loads only when that command runs, so every invocation starts fast.
COMMANDS = {
    "init": "picl.cli.spec:init",
    "validate": "picl.cli.spec:validate",
    "schema": "picl.cli.spec:schema",
    "secrets": "picl.cli.secrets:secrets",
    "plan": "picl.cli.converge:plan",
    "apply": "picl.cli.converge:apply",
    "status": "picl.cli.agent:status_command",
    "history": "picl.cli.agent:history_command",
    "run": "picl.cli.run:run_command",
    "check": "picl.cli.health:check_command",
    "reboot": "picl.cli.power:reboot_command",
    "shutdown": "picl.cli.power:shutdown_command",
    "leds": "picl.cli.leds:leds",
    "agent": "picl.cli.agent:agent",
    "lab": "picl.cli.lab:lab",
}
# name -> the first paragraph of its help: what `picl --help` lists without loading any
# command's module (tests check each against the command's own).
SUMMARIES = {
    "init": "Write a commented starter cluster.toml (and a .gitignore keeping secrets.toml out "
            "of git).",
    "validate": "Check the spec: 0 valid, 1 invalid, every problem as FILE:LINE:COL: "
                "key.path: message.",
    "schema": "Print the JSON Schema of cluster.toml (for editor completion and checks).",
    "secrets": "The secrets file: secrets.toml beside the spec (or --secrets), mode 600, "
               "never in git.",
    "plan": "Show what apply would change on each node, and why.",
    "apply": "Converge the nodes to the spec: shows the plan, asks, applies in parallel.",
    "status": "The agent's status: revisions, conditions, nodes.",
    "history": "The agent's last cycles: when, why, which revision, how each ended.",
    "run": "Run CMD on every node (or those given) in parallel, as the cluster's user.",
    "check": "Check every node's health, in one SSH round trip each; exit 1 if anything "
             "FAILs.",
    "reboot": "Reboot every node (or those given) and wait until each is back.",
    "shutdown": "Power off every node safely: the workers, then the primary once they have "
                "halted.",
    "leds": "The cluster's state on the Blinkt! LED strips (or drawn in this terminal).",
    "agent": "The agent on the primary: git push changes the cluster, drift is repaired, on "
             "boot too.",
    "lab": "A local cluster of real systemd nodes built from the spec (root, Linux).",
}


# The options of the whole command line, accepted on either side of the command:
# `picl validate --spec x.toml` is `picl --spec x.toml validate`.
GLOBAL_FLAGS = frozenset({"--lab", "-v", "--verbose"})
GLOBAL_VALUES = frozenset({"--spec", "--secrets"})


def hoist(args: Sequence[str]) -> list[str]:
    """The command line with its global options moved before the command (never from past `--`,
    where the words belong to the command picl runs)."""
    moved: list[str] = []
    kept: list[str] = []
    tokens = iter(args)
    for token in tokens:
        if token == "--":
            kept += [token, *tokens]
        elif token in GLOBAL_VALUES:
            value = next(tokens, None)
            if value is None:
                raise click.UsageError(f"Option '{token}' requires an argument.")
            moved += [token, value]
        elif token in GLOBAL_FLAGS or token.partition("=")[0] in GLOBAL_VALUES:
            moved.append(token)
        else:
            kept.append(token)
    return moved + kept


class Commands(click.Group):
    """The command group, in the order of the design's contract, loaded on use."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist(args))

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, name = target.partition(":")
        command = getattr(importlib.import_module(module), name)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list, as click writes it, from SUMMARIES: `picl --help` loads no
        command's module (and so neither pyinfra nor pydantic)."""
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [(name, click.Command(name, help=SUMMARIES[name]).get_short_help_str(limit))
                for name in COMMANDS]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=Commands, context_settings=CONTEXT)
@click.option(
    "--spec",
    metavar="PATH",
    help="The cluster spec [env PICL_SPEC; default ./cluster.toml].",
)
@click.option(
    "--secrets",
    metavar="PATH",
    help="The secrets file [env PICL_SECRETS; default secrets.toml beside the spec].",
)
@click.option("--lab", is_flag=True, help="Point the command at the local lab of this spec.")
@click.option("-v", "--verbose", is_flag=True, help="More detail; tracebacks for internal errors.")
@click.version_option(package_name="picl", prog_name="picl")
@click.pass_context
def cli(
    ctx: click.Context, spec: str | None, secrets: str | None, lab: bool, verbose: bool
) -> None:
    """Keep a small cluster of Raspberry Pi (and other Debian) boards as cluster.toml says.

    The options above go before or after the command: `picl validate --spec x.toml`.
    """
    ctx.obj = Env.from_options(spec, secrets, lab, verbose)
    if lab and not os.environ.get("PICL_IN_LAB") and ctx.invoked_subcommand != "lab":
        from picl.lab import enter

        enter(ctx.obj.lab_name(), sys.argv[1:])


def _internal_error(exc: BaseException, verbose: bool) -> None:
    err = console(stderr=True)
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" at {frame.filename}:{frame.lineno}" if frame else ""
    if verbose:
        err.print(traceback.format_exc(), markup=False)
    err.print(
        f"picl: internal error (a bug in picl){where}: {type(exc).__name__}: {exc}",
        markup=False,
    )
    if not verbose:
        err.print("picl: run again with -v for the traceback, and report it", markup=False)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: every outcome becomes a message and an exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in args or "--verbose" in args
    try:
        status = cli.main(args=args, prog_name="picl", standalone_mode=False)
    except click.exceptions.Exit as exc:
        status = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        status = ExitStatus.ERROR  # usage errors are errors, not "changes pending"
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        console(stderr=True).print("picl: interrupted", markup=False)
        # click turns Ctrl-C into Abort; an Abort of its own (end of input at a prompt) is 1.
        interrupted = isinstance(exc, KeyboardInterrupt) or isinstance(exc.__cause__,
                                                                      KeyboardInterrupt)
        status = ExitStatus.INTERRUPTED if interrupted else ExitStatus.ERROR
    except PiclError as exc:
        err = console(stderr=True)
        for line in exc.lines():
            err.print(line, markup=False)
        status = ExitStatus.ERROR
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        _internal_error(exc, verbose)
        status = ExitStatus.ERROR
    sys.exit(int(status or 0))
