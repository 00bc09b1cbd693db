"""The pyinfra operations picl's steps use, and shorthands that build those steps.

Every change is applied through real pyinfra operations: `server.shell` for commands that the
plan computed, `files.put` for whole files, and picl's own `install_packages` below.
"""

from __future__ import annotations

import shlex
from io import StringIO

from pyinfra.api import StringCommand, operation
from pyinfra.operations import files, server

from picl.deploy.changes import Step


def sh(*commands: str | StringCommand) -> Step:
    """Commands run in order; the first that fails stops the node's apply."""
    return Step(server.shell, {"commands": list(commands)})


def command(*words: str) -> str:
    """A shell command with every word quoted."""
    return shlex.join(words)


def piped(command: str, secret: str) -> Step:
    """`command` reading `secret` on its standard input.

    A secret is never a word of a command: any local user reads every process's arguments in
    /proc/PID/cmdline. It reaches a node as standard input (this) or as an uploaded file (`put`).
    """
    return Step(server.shell, {"commands": [command], "_stdin": secret})


def put(path: str, content: str, owner: str = "root", group: str = "root",
        mode: str = "0644") -> Step:
    """Write a whole file (pyinfra uploads it and sets owner, group and mode)."""
    return Step(
        files.put,
        {"src": StringIO(content), "dest": path, "user": owner, "group": group,
         "mode": mode, "create_remote_dir": True},
    )


def apt_install(packages: list[str]) -> str:
    """Shell that refreshes the package index, then installs `packages`, or fails naming them.

    A refresh that fails (a cluster carried offline) is reported and the install goes on
    from what the node already knows, so packages in its cache still install. The last line
    of a failure names the packages: it is what the node's apply reports.
    """
    failed = f"cannot install {' '.join(packages)}: no package source has them (offline?)"
    return (
        "apt-get update -qq "
        "|| echo 'picl: package index not refreshed (offline?), using the cached one' >&2; "
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "
        f"{command(*packages)} || {{ echo {shlex.quote(failed)} >&2; exit 1; }}"
    )


@operation(is_idempotent=False)
def install_packages(packages: list[str]):
    """
    Install packages with apt, after refreshing the package index.

    + packages: Debian package names
    """
    yield apt_install(packages)
