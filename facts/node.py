"""Everything picl needs to know about one node, read in one SSH round trip.

pyinfra's own facts cost a command each; a no-op plan of the whole spec would cost dozens of
round trips per node. `NodeState` is one pyinfra fact whose command prints every section picl
compares (files as base64, so no content can be mistaken for a section marker), and whose
`process` parses them into an `Observed` node. picl's plan runs the same `script` over a shared
OpenSSH connection and `parse`s it (deploy.converge.read_nodes); a pyinfra deploy uses the fact.
"""

from __future__ import annotations

import base64
import shlex
from dataclasses import dataclass, field
from typing import Any

MARK = "@@picl"
ABSENT = "!absent"


@dataclass(frozen=True)
class Probe:
    """What to read on a node: the parts of the state that depend on the spec."""

    users: tuple[str, ...] = ()  # their authorized_keys, sudoers drop-in, cluster key, home
    files: tuple[str, ...] = ()  # managed files: content and ownership
    directories: tuple[str, ...] = ()  # exported directories: ownership and mode
    packages: tuple[str, ...] = ()
    units: tuple[str, ...] = ()  # systemd units: enabled? active?
    exists: tuple[str, ...] = ()  # paths whose existence alone matters (a backend's programs)
    secret_files: tuple[str, ...] = ()  # compared by digest: their content never leaves the node
    versions: tuple[str, ...] = ()  # packages whose version is read (installed, else candidate)


DEFAULT_TARGET = "/etc/systemd/system/default.target"
VENDOR_DEFAULT_TARGET = "/lib/systemd/system/default.target"  # when the admin set none
# Files read whole on every node, by section name.
SYSTEM_FILES = {
    "hostname": "/etc/hostname",
    "hosts": "/etc/hosts",
    "chrony": "/etc/chrony/chrony.conf",
    "exports": "/etc/exports.d/picl.exports",
    "known_hosts": "/etc/ssh/ssh_known_hosts",
}


def _file(section: str, quoted: str) -> str:
    """Print a file as base64 (any content survives: no newline at the end, marker-like lines).

    `quoted` is a shell word: a quoted path, or an expression like "$h/.ssh/authorized_keys".
    """
    return (
        f"echo {shlex.quote(f'{MARK} {section}')}; "
        f"if [ -f {quoted} ]; then base64 -w0 {quoted}; echo; else echo {ABSENT}; fi"
    )


def _stat(section: str, quoted: str) -> str:
    return (
        f"echo {shlex.quote(f'{MARK} {section}')}; "
        f"stat -c '%U %G %a %u %g %F' {quoted} 2>/dev/null || echo {ABSENT}"
    )


def script(probe: Probe) -> str:
    """The shell script that prints every section of a node's state. Always exits 0."""
    parts = [
        f"echo '{MARK} live_hostname'; hostname",
        f"echo '{MARK} boot_id'; cat /proc/sys/kernel/random/boot_id",
        f"echo '{MARK} passwd'; getent passwd",
        f"echo '{MARK} group'; getent group",
        # What `systemctl get-default` prints, without its round trip to systemd.
        f"echo '{MARK} target'; t=$(readlink -e {DEFAULT_TARGET} || readlink -e "
        f"{VENDOR_DEFAULT_TARGET}) && basename \"$t\" || echo {ABSENT}",
        f"echo '{MARK} localtime'; readlink /etc/localtime || echo {ABSENT}",
        f"echo '{MARK} cores'; nproc",
        f"echo '{MARK} host_keys'; cat /etc/ssh/ssh_host_*_key.pub 2>/dev/null",
        # Bytes, not text: fstab is rewritten byte for byte, whatever its encoding.
        _file("fstab", "/etc/fstab"),
    ]
    parts += [_file(section, shlex.quote(path)) for section, path in SYSTEM_FILES.items()]
    if probe.packages:
        names = " ".join(shlex.quote(p) for p in probe.packages)
        parts.append(
            f"echo '{MARK} packages'; "
            f"dpkg-query -W -f='${{Package}} ${{db:Status-Abbrev}}\\n' {names} 2>/dev/null; true"
        )
    for user in probe.users:
        # A user that does not exist yet has no home to read from.
        account = f"getent passwd {shlex.quote(user)} | cut -d: -f6"
        parts.append(f"h=$({account}); h=${{h:-/nonexistent}}")
        parts.append(_file(f"authorized_keys {user}", '"$h/.ssh/authorized_keys"'))
        parts.append(_file(f"cluster_key {user}", '"$h/.ssh/id_ed25519.pub"'))
        parts.append(_stat(f"cluster_key_private {user}", '"$h/.ssh/id_ed25519"'))
        parts.append(_file(f"sudoers {user}", shlex.quote(f"/etc/sudoers.d/picl-{user}")))
        parts.append(_stat(f"home {user}", '"$h"'))
        parts.append(_stat(f"xauthority {user}", '"$h/.Xauthority"'))
        # A password hash is compared by digest: the hash itself never leaves the node.
        parts.append(f"echo {shlex.quote(f'{MARK} password {user}')}; "
                     f"getent shadow {shlex.quote(user)} | cut -d: -f2 | sha256sum | cut -c1-64")
    for path in probe.files:
        parts.append(_file(f"file {path}", shlex.quote(path)))
        parts.append(_stat(f"file_stat {path}", shlex.quote(path)))
    if probe.units:
        # One `systemctl show` for every unit: each systemctl call costs a node ~10 ms of CPU.
        names = " ".join(shlex.quote(u) for u in probe.units)
        parts.append(f"echo '{MARK} units'; echo {shlex.quote(' '.join(probe.units))}; "
                     f"systemctl show -p LoadState -p UnitFileState -p ActiveState -- {names} "
                     "2>/dev/null; true")
    for path in probe.directories:
        parts.append(_stat(f"directory {path}", shlex.quote(path)))
    if probe.exists:
        paths = " ".join(shlex.quote(p) for p in probe.exists)
        parts.append(f"echo '{MARK} exists'; "
                     f"for p in {paths}; do [ -e \"$p\" ] && echo \"$p\"; done")
    for path in probe.secret_files:
        quoted = shlex.quote(path)
        parts.append(f"echo {shlex.quote(f'{MARK} digest {path}')}; "
                     f"if [ -f {quoted} ]; then sha256sum < {quoted} | cut -c1-64; "
                     f"else echo {ABSENT}; fi")
        parts.append(_stat(f"file_stat {path}", quoted))
    for package in probe.versions:
        quoted = shlex.quote(package)
        # apt-cache loads the whole index (a second on a Pi): only until the package is installed.
        parts.append(
            f"echo {shlex.quote(f'{MARK} version {package}')}; "
            f"dpkg-query -W -f='${{db:Status-Abbrev}} ${{Version}}\\n' {quoted} 2>/dev/null "
            f"| sed -n 's/^ii *//p' | grep . || apt-cache policy {quoted} 2>/dev/null "
            f"| sed -n 's/^ *Candidate: *//p' | grep -vx '(none)' || echo {ABSENT}"
        )
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
    def parse(cls, line: str) -> Stat | None:
        if line == ABSENT:
            return None
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


@dataclass
class Observed:
    """A node's live state, as `NodeState` read it."""

    live_hostname: str = ""
    boot_id: str = ""
    accounts: dict[str, Account] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    target: str | None = None
    localtime: str | None = None
    host_keys: list[str] = field(default_factory=list)
    password_digests: dict[str, str] = field(default_factory=dict)  # user -> sha256 of hash
    fstab: bytes | None = None  # /etc/fstab exactly as on disk (None: absent)
    files: dict[str, str | None] = field(default_factory=dict)  # path -> text (None: absent)
    stats: dict[str, Stat | None] = field(default_factory=dict)  # path -> stat
    packages: dict[str, bool] = field(default_factory=dict)  # name -> installed
    user_files: dict[tuple[str, str], str | None] = field(default_factory=dict)
    user_stats: dict[tuple[str, str], Stat | None] = field(default_factory=dict)
    units: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (enabled, active)
    existing: set[str] = field(default_factory=set)  # the probe's `exists` paths that exist
    digests: dict[str, str | None] = field(default_factory=dict)  # secret file -> sha256
    cores: int | None = None  # processing units available (nproc)
    # The probe's `versions`: the installed version, else the one apt would install; None: neither.
    versions: dict[str, str | None] = field(default_factory=dict)

    def file(self, path: str) -> str | None:
        return self.files.get(path)

    @property
    def timezone(self) -> str | None:
        if not self.localtime or "zoneinfo/" not in self.localtime:
            return None
        return self.localtime.split("zoneinfo/", 1)[1]

    def supplementary_groups(self, user: str) -> set[str]:
        return {g.name for g in self.groups.values() if user in g.members}


def _decode(line: str) -> str | None:
    if line == ABSENT:
        return None
    return base64.b64decode(line).decode("utf-8", errors="replace")


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


def parse(lines: list[str]) -> Observed:
    """The script's output -> Observed."""
    found = sections(lines)
    first = {name: (body[0] if body else "") for name, body in found.items()}
    observed = Observed(
        live_hostname=first.get("live_hostname", ""),
        boot_id=first.get("boot_id", ""),
        target=None if first.get("target") in (None, ABSENT) else first["target"],
        localtime=None if first.get("localtime") in (None, ABSENT) else first["localtime"],
        host_keys=[line for line in found.get("host_keys", []) if line.strip()],
        fstab=None if first.get("fstab", ABSENT) == ABSENT else base64.b64decode(first["fstab"]),
        existing=set(found.get("exists", [])),
        cores=int(first["cores"]) if first.get("cores", "").isdigit() else None,
    )
    for line in found.get("passwd", []):
        fields = line.split(":")
        if len(fields) >= 7:
            observed.accounts[fields[0]] = Account(
                fields[0], int(fields[2]), int(fields[3]), fields[5], fields[6]
            )
    for line in found.get("group", []):
        fields = line.split(":")
        if len(fields) >= 4:
            members = tuple(m for m in fields[3].split(",") if m)
            observed.groups[fields[0]] = Group(fields[0], int(fields[2]), members)
    observed.units = units(found.get("units", []))
    for line in found.get("packages", []):
        name, _, status = line.partition(" ")
        observed.packages[name] = status.startswith("ii")
    for section, path in SYSTEM_FILES.items():
        observed.files[path] = _decode(first.get(section, ABSENT))
    for name, body in found.items():
        kind, _, rest = name.partition(" ")
        value = body[0] if body else ABSENT
        if kind == "file":
            observed.files[rest] = _decode(value)
        elif kind in ("file_stat", "directory"):
            observed.stats[rest] = Stat.parse(value)
        elif kind in ("authorized_keys", "cluster_key", "sudoers"):
            observed.user_files[(kind, rest)] = _decode(value)
        elif kind == "digest":
            observed.digests[rest] = None if value == ABSENT else value
        elif kind == "version":
            observed.versions[rest] = None if value == ABSENT else value
        elif kind == "password":
            observed.password_digests[rest] = value
        elif kind in ("cluster_key_private", "home", "xauthority"):
            observed.user_stats[(kind, rest)] = Stat.parse(value)
    return observed


def __getattr__(name: str) -> Any:
    """`NodeState`, defined on first use: pyinfra loads where the fact is used, not in a
    process that only plans (the agent, which reads with `script` and `parse`)."""
    if name != "NodeState":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from pyinfra.api import FactBase

    class NodeState(FactBase[Observed]):
        """A node's whole state as picl compares it, in one command."""

        def command(self, probe: Probe) -> str:
            return script(probe)

        def process(self, output: list[str]) -> Observed:
            return parse(output)

    globals()["NodeState"] = NodeState
    return NodeState
