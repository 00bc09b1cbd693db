"""How a command reaches a lab: which lab it means, and its way into the lab's network."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from picl.errors import PiclError
from picl.lab import host, ssh
from picl.lab.blueprint import built_from, check_name
from picl.lab.state import find

if TYPE_CHECKING:
    from picl.spec import Cluster

NAME_ENV = "PICL_LAB_NAME"
IN_LAB_ENV = "PICL_IN_LAB"


def lab_name(cluster: Cluster, name: str | None = None) -> str:
    """The lab's name: the one given, else $PICL_LAB_NAME, else the spec's cluster name."""
    return check_name(name or os.environ.get(NAME_ENV) or cluster.cluster.name)


def lab_of(spec: Path, name: str | None = None) -> str:
    """The lab a command means: the one named, else $PICL_LAB_NAME, else the spec's cluster's.

    Only `[cluster] name` is read of the spec; a spec too broken for that still finds the lab
    that was built from that file.
    """
    given = name or os.environ.get(NAME_ENV)
    if given:
        return check_name(given)
    from picl.spec import cluster_name

    try:
        return check_name(cluster_name(spec))
    except PiclError as exc:
        built = built_from(spec)
        if len(built) == 1:
            return built[0]
        raise PiclError("\n".join([*exc.lines(), f"{spec}: cannot tell which lab it is: "
                                    "give --name NAME (or PICL_LAB_NAME)"])) from None


def ssh_argv(name: str, node_name: str, command: Sequence[str], interactive: bool) -> list[str]:
    """The command line that runs `command` (or a login shell) on a node as root over SSH."""
    lab = find(name)
    target = lab.node(node_name)
    options = ["-t"] if interactive and not command else ["-o", "BatchMode=yes"]
    return ssh.ssh_argv(lab, target, command, options)


def exec_argv(name: str, command: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) running `command` inside the lab's network, SSH set up for the nodes."""
    if not command:
        raise PiclError("nothing to run: picl lab exec -- COMMAND...")
    lab = find(name)
    return ssh.in_network(lab, list(command)), ssh.environment(lab)


def enter(name: str, argv: Sequence[str]) -> NoReturn:
    """Run this picl command again inside lab `name`'s network: what `picl --lab ...` does.

    `argv` is the command line after the program name. The new process gets PICL_IN_LAB (so it
    does not enter again), PICL_SSH_KEY, PICL_KNOWN_HOSTS and PICL_GLOBAL_KNOWN_HOSTS (what
    picl's SSH layer uses), PICL_SSH_CONFIG, and `ssh`/`scp` on PATH set up for the lab.
    """
    host.preflight(("nsenter",))
    lab = find(name)
    program = [sys.executable, "-c", "import sys; from picl.cli import main; main()"]
    argv_in = ssh.in_network(lab, [*program, *argv])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(argv_in[0], argv_in, ssh.environment(lab))
