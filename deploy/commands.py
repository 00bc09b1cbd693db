"""The pyinfra operations picl's steps use, and shorthands that build those steps.

Every change is applied through real pyinfra operations: `shell` for commands that the plan
computed, `write_file` for whole files and `install_packages` below. They are declared with
`changes.operation`: pyinfra loads where they run, not where they are planned.
"""

from __future__ import annotations

import posixpath
import secrets
import shlex
from collections.abc import Generator
from io import BytesIO, StringIO
from typing import TYPE_CHECKING

from picl.deploy.changes import Step, operation

if TYPE_CHECKING:
    from pyinfra.api.command import PyinfraCommand


@operation(is_idempotent=False)
def shell(commands: list[str]):
    """
    Run shell commands in order; the first that fails stops the node's apply.

    + commands: shell text, each run as one command

    As pyinfra's `server.shell`, declared here so that planning loads no pyinfra.
    """
    yield from commands


def sh(*commands: str) -> Step:
    """Commands run in order; the first that fails stops the node's apply."""
    return Step(shell, {"commands": list(commands)})


def command(*words: str) -> str:
    """A shell command with every word quoted."""
    return shlex.join(words)


def piped(command: str, secret: str) -> Step:
    """`command` reading `secret` on its standard input.

    A secret is never a word of a command: any local user reads every process's arguments in
    /proc/PID/cmdline. It reaches a node as standard input (this) or as an uploaded file (`put`).
    """
    return Step(shell, {"commands": [command], "_stdin": secret})


def put(path: str, content: str, owner: str = "root", group: str = "root",
        mode: str = "0644", check: str = "") -> Step:
    """Write a whole file atomically, with its owner, group and mode (see `write_file`)."""
    return Step(write_file, {"src": StringIO(content), "dest": path, "user": owner,
                             "group": group, "mode": mode, "check": check})


# Where `write_file` uploads a file's content before the node puts it in place: root's alone,
# and a tmpfs, so a secret left by an apply killed mid-way is gone at the next boot.
UPLOADS = "/run/picl/uploads"

# Put the content read on stdin in place as file $1 of the current directory: a temporary file
# beside it (0600 from creation), given its owner and mode and checked, synced, then renamed
# over it and the directory synced. Run by the writer `write_file` chose; readers and a crash
# at any instant see the old file or the new one, never a part, never a looser mode.
REPLACE = """\
set -u
N=$1 O=$2 G=$3 M=$4 C=$5
umask 077
for old in .picl-"$N".*; do rm -f -- "$old"; done  # what an apply killed mid-write left
t=$(mktemp ".picl-$N.XXXXXX") || exit 1
if cat > "$t" && chown -- "$O:$G" "$t" && chmod -- "$M" "$t" && { [ -z "$C" ] || $C "$t"; } \\
  && sync -- "$t" && mv -fT -- "$t" "$N" && sync .; then exit 0; fi
rm -f -- "$t"
exit 1
"""


def replaced(path: str, mode: str = "0644") -> str:
    """Shell that makes its stdin the whole of `path` (root's), as `write_file` replaces files.

    For places only root can change: the agent's files on the primary, root's own keys.
    """
    directory, file = posixpath.split(path)
    return (f"(cd {shlex.quote(directory)} && sh -c {shlex.quote(REPLACE)} sh {shlex.quote(file)}"
            f" root root {shlex.quote(mode)} '')")


# Choose who writes. Root writes only where nobody else can change the way to the directory:
# every directory on it, as written and as resolved, is root's and nobody else's to change
# (sticky excepted). A directory of a user's is written in as that user, who can only write
# where they already could. `cd -P` pins the directory: renaming it or its parents is moot.
WRITE = """\
say() { printf 'picl: %s: %s\\n' "$P" "$*" >&2; }
trap 'rm -f -- "$S"' EXIT
rootonly() {
  p=$1
  while :; do
    set -- $(stat -L -c '%u %a' -- "${p:-/}") || return 1
    [ "$1" = 0 ] && { [ $((0$2 & 022)) = 0 ] || [ $((0$2 & 01000)) != 0 ]; } || return 1
    [ -n "$p" ] || return 0
    p=${p%/*}
  done
}
refuse() { say "others than root can change $1, and it is not $O's: picl does not write there"; }
uid=$(id -u -- "$O") || { say "no user $O"; exit 1; }
as_owner() { if [ "$uid" = 0 ]; then "$@"; else runuser -u "$O" -- "$@"; fi; }
if [ ! -d "$D" ]; then  # created as root in root's tree only, owned as the file
  a=$D; while [ -n "$a" ] && [ ! -e "$a" ]; do a=${a%/*}; done
  if rootonly "$a" && (cd -P -- "${a:-/}" && rootonly "$(pwd -P)"); then
    mkdir -p -- "$D" && chown -- "$O:$G" "$D"
  elif [ "$uid" != 0 ]; then as_owner mkdir -p -- "$D"
  else refuse "${a:-/}"; false; fi || { say "cannot create $D"; exit 1; }
fi
cd -P -- "$D" || exit 1
if rootonly "$D" && rootonly "$(pwd -P)"; then
  sh -c "$REPLACE" sh "$N" "$O" "$G" "$M" "$C" < "$S"
elif [ "$uid" != 0 ] && [ "$(stat -c %u .)" = "$uid" ]; then
  as_owner sh -c "$REPLACE" sh "$N" "$O" "$G" "$M" "$C" < "$S"
else
  refuse "$D"; exit 1
fi || { say "not written"; exit 1; }
"""


def upload(data: bytes) -> Generator[PyinfraCommand, None, str]:
    """Commands that put `data` in a file of root's alone on the node; returns its path.

    What uses it removes the file; uploads an apply lost on the way are removed after an hour.
    """
    from pyinfra.api import FileUploadCommand, StringCommand

    staged = f"{UPLOADS}/{secrets.token_hex(8)}"
    yield StringCommand(f"install -d -m 0700 {UPLOADS} && "
                        f"find {UPLOADS} -type f -mmin +60 -delete")
    yield FileUploadCommand(BytesIO(data), staged)
    return staged


@operation()
def write_file(src: StringIO | BytesIO, dest: str, user: str = "root", group: str = "root",
               mode: str = "0644", check: str = ""):
    """
    Replace a whole file atomically: the node sees the old file or the new one, never a part.

    + src: the content (a StringIO or BytesIO)
    + dest: the file's absolute path
    + user: its owner
    + group: its group
    + mode: its mode, as chmod takes it
    + check: a command the new file must pass (given its path) before it replaces the old one

    The content is uploaded to a private place on the node (never in a command's arguments),
    then copied to a temporary file beside `dest`, created 0600, given its owner and mode,
    synced, and renamed over `dest`. A file in a directory of a user's is written as that user.
    Missing directories are created, the last one owned as the file.
    """
    from pyinfra.api import StringCommand

    content = src.getvalue()
    staged = yield from upload(content.encode() if isinstance(content, str) else content)
    variables = {"P": dest, "S": staged, "D": posixpath.dirname(dest) or "/",
                 "N": posixpath.basename(dest), "O": user, "G": group, "M": mode, "C": check,
                 "REPLACE": REPLACE}
    head = "".join(f"{key}={shlex.quote(value)}\n" for key, value in variables.items())
    yield StringCommand(head + WRITE)


def apt_install(packages: list[str]) -> str:
    """Shell that refreshes the package index, then installs `packages`, or fails naming them.

    A refresh that fails (a cluster carried offline) is reported and the install goes on
    from what the node already knows, so packages in its cache still install. The last line
    of a failure names the packages: it is what the node's apply reports. Each name is read
    as that package: apt-get reads a name no package has as a regular expression (`ht.p`
    installs whatever matches, removing what that conflicts with); patterns only turn it off.
    """
    failed = f"cannot install {' '.join(packages)}: no package source has them (offline?)"
    return (
        "apt-get update -qq "
        "|| echo 'picl: package index not refreshed (offline?), using the cached one' >&2; "
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "
        f"-o APT::Cmd::Pattern-Only=true -- {command(*packages)} "
        f"|| {{ echo {shlex.quote(failed)} >&2; exit 1; }}"
    )


@operation(is_idempotent=False)
def install_packages(packages: list[str]):
    """
    Install packages with apt, after refreshing the package index.

    + packages: Debian package names
    """
    yield apt_install(packages)
