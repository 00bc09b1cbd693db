"""The pyinfra operations picl's steps use, and shorthands that build those steps.

Every change is applied through real pyinfra operations: `server.shell` for commands that the
plan computed, `files.put` for whole files, and picl's own `install_packages` below.
"""

from __future__ import annotations

import shlex
from io import StringIO

from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.api.hiddenvalue import HiddenValue
from pyinfra.operations import files, server

from picl.deploy.changes import Step


def sh(*commands: str | StringCommand) -> Step:
    """Commands run in order; the first that fails stops the node's apply."""
    return Step(server.shell, {"commands": list(commands)})


def command(*words: str) -> str:
    """A shell command with every word quoted."""
    return shlex.join(words)


def masked(*words: str, secret: str, then: tuple[str, ...] = ()) -> StringCommand:
    """`words SECRET then`: pyinfra prints the secret masked."""
    return StringCommand(*(QuoteString(w) for w in words), QuoteString(HiddenValue(secret)),
                         *(QuoteString(w) for w in then))


def put(path: str, content: str, owner: str = "root", group: str = "root",
        mode: str = "0644") -> Step:
    """Write a whole file (pyinfra uploads it and sets owner, group and mode)."""
    return Step(
        files.put,
        {"src": StringIO(content), "dest": path, "user": owner, "group": group,
         "mode": mode, "create_remote_dir": True},
    )


@operation(is_idempotent=False)
def install_packages(packages: list[str]):
    """
    Refresh the package index, then install packages with apt.

    + packages: Debian package names

    A refresh that fails (a cluster carried offline) is reported and the install goes on
    from what the node already knows, so packages in its cache still install.
    """
    yield (
        "apt-get update -qq "
        "|| echo 'picl: package index not refreshed (offline?), using the cached one' >&2"
    )
    yield StringCommand(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends",
        *(QuoteString(p) for p in packages),
    )
