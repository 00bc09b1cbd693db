"""Everything picl needs to know about one node, read in one SSH round trip.

Each concern declares what it reads (`Reads`: files, links, units, packages...) beside the
changes it makes from them, as pyinfra pairs a fact with its operation; the plan merges the
declarations and `script` turns them into one shell program per node. It runs a handful of
programs whatever the spec holds (one `tar` for every file, one `stat` for every path, one
`sha256sum` for every secret): each program a node starts costs it a fork and an exec, which a
Pi 3 feels. `NodeState` is the same read as a pyinfra fact; picl's plan runs the script over a
shared OpenSSH connection and `parse`s it (deploy.converge.read_nodes).
"""

from __future__ import annotations

import base64
import fnmatch
import io
import posixpath
import shlex
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

MARK = "@@picl"
NO_HOME = "/nonexistent"  # where an account without a home (or no account) keeps its files
# File descriptors the password hashes are handed to sha256sum on: a POSIX shell has 3 to 9.
_FDS = range(3, 10)


@dataclass(frozen=True)
class Reads:
    """What one concern reads on a node. The plan merges every concern's into one read."""

    files: tuple[str, ...] = ()  # read whole, bytes as they are, with their stat
    patterns: tuple[str, ...] = ()  # shell globs (written in code, never from a spec), read whole
    stats: tuple[str, ...] = ()  # owner and mode only: a directory, a private key
    links: tuple[str, ...] = ()  # where a symlink points, one level (as readlink)
    secret_files: tuple[str, ...] = ()  # sha256 and stat: their content never leaves the node
    home_files: tuple[tuple[str, str], ...] = ()  # (user, path in their home), read whole
    home_stats: tuple[tuple[str, str], ...] = ()  # (user, path in their home), stat only
    passwords: tuple[str, ...] = ()  # users whose password hash is compared by its digest
    kernel: tuple[str, ...] = ()  # /proc files: their size reads as 0, the shell reads them
    units: tuple[str, ...] = ()  # systemd units: enabled? active?
    exists: tuple[str, ...] = ()  # paths whose existence alone matters (a backend's programs)
    packages: tuple[str, ...] = ()  # installed?
    versions: tuple[str, ...] = ()  # the installed version, else the one apt would install
    commands: tuple[tuple[str, str], ...] = ()  # (name, shell): output kept; each costs a fork

    def __or__(self, other: Reads) -> Reads:
        """Both declarations, each item once, in the order first declared."""
        return Reads(**{f.name: tuple(dict.fromkeys(getattr(self, f.name)
                                                    + getattr(other, f.name)))
                        for f in fields(self)})


def merged(declarations: Iterable[Reads]) -> Reads:
    """Every declaration in one read."""
    found = Reads()
    for reads in declarations:
        found |= reads
    return found


def _words(words: Iterable[str]) -> str:
    return " ".join(shlex.quote(w) for w in words)


def _homes(reads: Reads) -> tuple[list[str], dict[str, str]]:
    """Shell lines that set each home-reading user's home, and the user -> variable map."""
    users = list(dict.fromkeys(u for u, _ in (*reads.home_files, *reads.home_stats)))
    if not users:
        return [], {}
    var = {user: f"h{i}" for i, user in enumerate(users)}
    cases = "".join(f"    {shlex.quote(u)}) {v}=${{h:-{NO_HOME}}} ;;\n" for u, v in var.items())
    return [
        " ".join(f"{v}={NO_HOME}" for v in var.values()),
        # The accounts just read, not a second getent: the same homes the parse sees.
        f"while IFS=: read -r n _ _ _ _ h _; do\n  case $n in\n{cases}  esac\ndone <<PICL_END\n"
        "$pw\nPICL_END",
    ], var


def _in_home(var: dict[str, str], user: str, path: str) -> str:
    return f'"${var[user]}"/{shlex.quote(path)}'


def _digests(reads: Reads) -> list[str]:
    """sha256sum of the secret files and of each user's password hash, in as few runs as can be.

    A hash reaches sha256sum through a here-document on a file descriptor (a pipe): never a
    word of a command, never a file on disk.
    """
    users = list(reads.passwords)
    chunks = [users[i:i + len(_FDS)] for i in range(0, len(users), len(_FDS))] or [[]]
    lines = []
    if users:
        var = {user: i for i, user in enumerate(users)}
        lines.append(" ".join(f"p{i}= f{i}=/dev/null" for i in var.values()))
        cases = "".join(
            f"    {shlex.quote(u)}) p{i}=$p f{i}=/dev/fd/{_FDS[i % len(_FDS)]} ;;\n"
            for u, i in var.items())
        lines.append(f"[ -r /etc/shadow ] && while IFS=: read -r n p _; do\n  case $n in\n{cases}"
                     "  esac\ndone < /etc/shadow")
    for number, chunk in enumerate(chunks):
        files = _words(reads.secret_files) if number == 0 else ""
        if not chunk and not files:
            continue
        first = number * len(_FDS)
        args = " ".join(f'"$f{first + j}"' for j in range(len(chunk)))
        heres = "".join(f" {_FDS[j]}<<PICL_P{j}" for j in range(len(chunk)))
        bodies = "".join(f"\n$p{first + j}\nPICL_P{j}" for j in range(len(chunk)))
        lines.append(f"echo {shlex.quote(' '.join([MARK, 'digests', *chunk]))}\n"
                     f"sha256sum -- {files} {args} 2>/dev/null{heres}{bodies}")
    return lines


def script(reads: Reads) -> str:
    """The shell program that prints everything `reads` asks for. Always exits 0."""
    homes, var = _homes(reads)
    parts = [
        # Accounts and groups: whose every file is; the homes below are looked up in them.
        f"echo '{MARK} passwd'; pw=$(getent passwd); printf '%s\\n' \"$pw\"",
        f"echo '{MARK} group'; getent group",
        *homes,
    ]
    for path in reads.kernel:
        quoted = shlex.quote(path)
        parts.append(f"echo {shlex.quote(f'{MARK} kernel {path}')}; [ -r {quoted} ] && "
                     f"while IFS= read -r l; do printf '%s\\n' \"$l\"; done < {quoted}")
    whole = [_words(reads.files), " ".join(reads.patterns),
             *(_in_home(var, u, p) for u, p in reads.home_files)]
    if any(whole):
        # One archive for every file: names, bytes and all, whatever they hold.
        parts.append(f"echo '{MARK} files'; tar -chPf - --no-recursion --hard-dereference "
                     f"--ignore-failed-read -- {' '.join(w for w in whole if w)} 2>/dev/null "
                     "| base64 -w0; echo")
    stat = [_words(dict.fromkeys([*reads.files, *reads.stats, *reads.links, *reads.secret_files])),
            *(_in_home(var, u, p) for u, p in reads.home_stats)]
    if any(stat):
        parts.append(f"echo '{MARK} stat'; QUOTING_STYLE=literal stat --printf "
                     f"'%U %G %a %u %g %F\\t%n\\t%N\\n' -- {' '.join(s for s in stat if s)} "
                     "2>/dev/null")
    parts += _digests(reads)
    names = [*reads.packages, *reads.versions]
    if names:
        parts.append(f"echo '{MARK} packages'; d=$(dpkg-query -W -f='${{Package}} "
                     f"${{db:Status-Abbrev}} ${{Version}}\\n' -- {_words(dict.fromkeys(names))} "
                     "2>/dev/null); printf '%s\\n' \"$d\"")
    for package in reads.versions:
        # apt-cache loads the whole index (a second on a Pi): only until the package is installed.
        parts.append(f"case \"\n$d\" in *{shlex.quote(chr(10) + package + ' ii ')}*) ;; *) "
                     f"echo {shlex.quote(f'{MARK} candidate {package}')}; "
                     f"apt-cache policy -- {shlex.quote(package)} 2>/dev/null ;; esac")
    if reads.units:
        # One `systemctl show` for every unit: each systemctl call costs a node ~10 ms of CPU.
        parts.append(f"echo '{MARK} units'; echo {shlex.quote(' '.join(reads.units))}; "
                     f"systemctl show -p LoadState -p UnitFileState -p ActiveState -- "
                     f"{_words(reads.units)} 2>/dev/null")
    if reads.exists:
        parts.append(f"echo '{MARK} exists'; "
                     f"for p in {_words(reads.exists)}; do [ -e \"$p\" ] && echo \"$p\"; done")
    for name, command in reads.commands:
        parts.append(f"echo {shlex.quote(f'{MARK} command {name}')}; {{ {command}\n}} 2>/dev/null")
    return "\n".join(parts) + "\ntrue\n"


@dataclass(frozen=True)
class Stat:
    owner: str
    group: str
    mode: str  # four octal digits
    uid: int
    gid: int
    kind: str

    @classmethod
    def parse(cls, line: str) -> Stat:
        owner, group, mode, uid, gid, kind = line.split(" ", 5)
        return cls(owner, group, mode.zfill(4), int(uid), int(gid), kind)


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str
    shell: str


@dataclass(frozen=True)
class Group:
    name: str
    gid: int
    members: tuple[str, ...]


def normal(path: str) -> str:
    """A path as read results are keyed: '/home/x//.ssh/k' and '/home/x/.ssh/k' are one file."""
    return "/" + posixpath.normpath(path).lstrip("/")


@dataclass
class Observed:
    """A node's live state, as `NodeState` read it. A path not read, or absent, is missing."""

    accounts: dict[str, Account] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # path -> content, bytes as on disk
    stats: dict[str, Stat] = field(default_factory=dict)  # path -> stat (of a link itself)
    links: dict[str, str] = field(default_factory=dict)  # symlink -> where it points
    digests: dict[str, str] = field(default_factory=dict)  # secret file -> sha256
    password_digests: dict[str, str] = field(default_factory=dict)  # user -> sha256 of hash
    kernel: dict[str, list[str]] = field(default_factory=dict)  # /proc file -> its lines
    packages: dict[str, bool] = field(default_factory=dict)  # name -> installed
    # The declared `versions`: the installed version, else the one apt would install.
    versions: dict[str, str | None] = field(default_factory=dict)
    units: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (enabled, active)
    existing: set[str] = field(default_factory=set)  # the declared `exists` paths that exist
    outputs: dict[str, list[str]] = field(default_factory=dict)  # declared commands' output

    def data(self, path: str) -> bytes | None:
        """A file's bytes, None when absent (or not a regular file)."""
        return self.files.get(normal(path))

    def file(self, path: str) -> str | None:
        """A file's text (bytes that are not UTF-8 as U+FFFD), None when absent."""
        data = self.data(path)
        return None if data is None else data.decode("utf-8", errors="replace")

    def home(self, user: str) -> str:
        """The user's home on the node, as the read found it."""
        account = self.accounts.get(user)
        return (account.home if account else "") or NO_HOME

    def home_file(self, user: str, path: str) -> str | None:
        return self.file(f"{self.home(user)}/{path}")

    def home_stat(self, user: str, path: str) -> Stat | None:
        return self.stats.get(normal(f"{self.home(user)}/{path}"))

    def matching(self, pattern: str) -> dict[str, str]:
        """The files read through a declared pattern: path -> text."""
        return {path: self.file(path) or "" for path in sorted(self.files)
                if fnmatch.fnmatchcase(path, pattern)}

    def supplementary_groups(self, user: str) -> set[str]:
        return {g.name for g in self.groups.values() if user in g.members}


def sections(lines: list[str]) -> dict[str, list[str]]:
    """Split the script's output at its markers."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        if line.startswith(MARK + " "):
            current = found.setdefault(line[len(MARK) + 1 :], [])
        elif current is not None:
            current.append(line)
    return found


def units(body: list[str]) -> dict[str, tuple[str, str]]:
    """`systemctl show`'s blocks, one per unit named on the first line -> (enabled, active).

    A unit systemd does not know, or no answer at all (no systemd), reads as absent.
    """
    if not body:
        return {}
    blocks: list[dict[str, str]] = [{}]
    for line in body[1:]:
        if not line:
            blocks.append({})
        else:
            key, _, value = line.partition("=")
            blocks[-1][key] = value
    found = {}
    for index, name in enumerate(body[0].split()):
        block = blocks[index] if index < len(blocks) else {}
        if block.get("LoadState", "not-found") == "not-found":
            found[name] = ("absent", "absent")
        else:
            found[name] = (block.get("UnitFileState") or "absent",
                           block.get("ActiveState") or "absent")
    return found


def _files(body: list[str]) -> dict[str, bytes]:
    """The archive's regular files: path -> bytes (a directory or a device is no file)."""
    encoded = "".join(body).strip()
    if not encoded:
        return {}
    found = {}
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(encoded)), mode="r:") as archive:
        for member in archive:
            if member.isreg():
                read = archive.extractfile(member)
                found[normal(member.name)] = read.read() if read else b""
    return found


def _stat(line: str, observed: Observed) -> None:
    stat, _, rest = line.partition("\t")
    name, _, shown = rest.partition("\t")
    path = normal(name)
    observed.stats[path] = Stat.parse(stat)
    if shown.startswith(name + " -> "):
        observed.links[path] = shown[len(name) + 4 :]


def _digest(section: str, body: list[str], observed: Observed) -> None:
    """sha256sum's lines: the secret files by name, then one per user, in the order named."""
    users = section.split()[1:]
    passwords = []
    for line in body:
        digest, _, name = line.partition("  ")
        if name == "/dev/null" or name.startswith("/dev/fd/"):
            passwords.append(digest)
        elif name:
            observed.digests[normal(name)] = digest
    observed.password_digests.update(zip(users, passwords, strict=False))


def _candidate(body: list[str]) -> str | None:
    """The version `apt-cache policy` says apt would install."""
    for line in body:
        key, _, value = line.strip().partition(": ")
        if key == "Candidate" and value != "(none)":
            return value
    return None


def parse(lines: list[str]) -> Observed:
    """The script's output -> Observed."""
    found = sections(lines)
    observed = Observed(existing=set(found.get("exists", [])),
                        units=units(found.get("units", [])),
                        files=_files(found.get("files", [])))
    for line in found.get("passwd", []):
        words = line.split(":")
        if len(words) >= 7:
            observed.accounts[words[0]] = Account(words[0], int(words[2]), int(words[3]),
                                                  words[5], words[6])
    for line in found.get("group", []):
        words = line.split(":")
        if len(words) >= 4:
            members = tuple(m for m in words[3].split(",") if m)
            observed.groups[words[0]] = Group(words[0], int(words[2]), members)
    for line in found.get("stat", []):
        _stat(line, observed)
    for line in found.get("packages", []):
        name, _, rest = line.partition(" ")
        if name:
            installed = rest.startswith("ii") or observed.packages.get(name, False)
            observed.packages[name] = installed
            if installed:
                observed.versions[name] = rest[4:] or None
    for section, body in found.items():
        kind, _, rest = section.partition(" ")
        if kind == "digests":
            _digest(section, body, observed)
        elif kind == "kernel":
            observed.kernel[rest] = body
        elif kind == "candidate":
            observed.versions[rest] = _candidate(body)
        elif kind == "command":
            observed.outputs[rest] = body
    return observed


def __getattr__(name: str) -> Any:
    """`NodeState`, defined on first use: pyinfra loads where the fact is used, not in a
    process that only plans (the agent, which reads with `script` and `parse`)."""
    if name != "NodeState":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from pyinfra.api import FactBase

    class NodeState(FactBase[Observed]):
        """A node's whole state as picl compares it, in one command."""

        def command(self, reads: Reads) -> str:
            return script(reads)

        def process(self, output: list[str]) -> Observed:
            return parse(output)

    globals()["NodeState"] = NodeState
    return NodeState
