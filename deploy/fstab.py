"""/etc/fstab as data: read and write it back byte for byte, and edit only picl's own entries.

The file is a list of lines; each keeps its original text, so every line picl does not change
is written back exactly as it was (comments, blank lines, tabs, odd spacing, `\\040` escapes,
entries with fewer than six fields, a missing final newline, even bytes that are not UTF-8).
Lines are read the way libmount reads them (`findmnt --tab-file`): fields split on spaces and
tabs, `\\NNN` octal escapes decoded, a line starting with `#` is a comment.

picl owns an entry when the line right above it is its marker, a comment a person can read:

    # picl: managed by picl (cluster.toml [[shares]] shared); edit the spec, not this line
    10.1.10.240:/srv/shared /shared nfs rw,_netdev,nofail,... 0 0

`plan_fstab` turns the current text and the entries the spec wants on a node into the new text
and what changed. It adds, updates and removes picl's entries only; it never touches `/`,
`/boot`, `/boot/firmware`, other system mount points, swap, or any line picl does not own.
An identical entry someone wrote by hand is adopted (marked, not rewritten); a different one
for the same mount point is a conflict the plan shows, never overwritten.

fstab lines can hold credentials (a CIFS `password=`, a URL with its password): every fstab
text picl shows (plan, JSON, errors, the agent's status) goes through `shown`, which hides them.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from picl.deploy.changes import SENSITIVE
from picl.errors import PiclError
from picl.spec import Cluster, Node, Share
from picl.spec.checks import SYSTEM_PATHS

MARKER = "# picl: managed by picl"
# Greedy: an origin may itself hold ')' (a mount point like /data(1)).
_MARKER = re.compile(r"^# picl: managed by picl(?: \((?P<origin>.*)\))?")
_BLANKS = re.compile(r"[ \t]+")
_OCTAL = re.compile(rb"\\([0-7]{3})")
# What libmount's mangle() escapes when it writes a field.
_MANGLE = {" ": "\\040", "\t": "\\011", "\n": "\\012", "\\": "\\134"}

# Options whose value is a credential, by what their names hold: password, password2, pass,
# passwd (mount.cifs, smbfs), secret and secretfile (ceph), key and passphrase_passwd
# (ecryptfs), token, ssh_command (sshfs, with `sshpass -p`). A value runs to a comma or a
# blank (mount.cifs writes a comma as ",,"). An option starts a line, a field or follows a
# comma, or a diff's +/-/space, or a comment's #, or an ecryptfs `key=type:`.
_START = r"(?<![^\s,#:+-])"
_SECRET_OPTION = re.compile(
    _START + r"(?P<name>[\w.-]*(?:pass|secret|token|key|command)[\w.-]*)=(?:,,|[^,\s])*",
    re.IGNORECASE)
# A user and a password in one option: username=bob%hunter2 (cifs), user=bob:hunter2 (curlftpfs).
_USER_PASSWORD = re.compile(_START + r"(?P<user>user(?:name)?=[^,\s%:]*[%:])(?:,,|[^,\s])+",
                            re.IGNORECASE)
# A source or URL with its password, up to the host's @: https://bob:hunter2@host/dav.
_USERINFO = re.compile(r"(?P<user>[^\s:/@#,=]+):[^\s/]+@")

# A client boots with its server down: the mount waits for the network, a failure is not fatal,
# and nothing is mounted until first use, with a bound on how long a mount may hang.
NFS_CLIENT_OPTIONS = ("_netdev", "nofail", "x-systemd.automount", "x-systemd.mount-timeout=30s")


def _decode(word: str) -> str:
    """A field as libmount reads it: `\\NNN` octal escapes become the bytes they name."""
    raw = word.encode("utf-8", "surrogateescape")
    return _OCTAL.sub(lambda m: bytes([int(m.group(1), 8) & 0xFF]), raw).decode(
        "utf-8", "surrogateescape"
    )


def _encode(value: str) -> str:
    return "".join(_MANGLE.get(c, c) for c in value)


def shown(text: str) -> str:
    """fstab text as picl shows it anywhere: credentials hidden, bytes that are not UTF-8 as
    U+FFFD (the file keeps them)."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    text = _SECRET_OPTION.sub(lambda m: f"{m['name']}={SENSITIVE}", text)
    text = _USER_PASSWORD.sub(lambda m: f"{m['user']}{SENSITIVE}", text)
    return _USERINFO.sub(lambda m: f"{m['user']}:{SENSITIVE}@", text)


@dataclass(frozen=True)
class FstabEntry:
    """One mount as fstab(5) describes it, fields decoded (`/mnt/my\\040disk` -> `/mnt/my disk`).

    `origin` says which part of the spec wants the entry; it goes into picl's marker and takes
    no part in comparisons.
    """

    what: str
    where: str
    type: str
    options: str = "defaults"
    dump: int = 0
    passno: int = 0
    origin: str = field(default="", compare=False)

    @property
    def mount_point(self) -> str:
        """`where`, normalised the way mount points compare (`/data/` is `/data`)."""
        return posixpath.normpath(self.where) if self.where.startswith("/") else self.where

    @property
    def system(self) -> bool:
        """A mount the system needs to boot (`/`, `/boot`, `/boot/firmware`, ...) or swap."""
        return (
            self.mount_point in SYSTEM_PATHS
            or self.type == "swap"
            or self.where in ("none", "swap")
        )

    def same_mount(self, other: FstabEntry) -> bool:
        """Both lines mount the same thing the same way (the mount point compared normalised)."""
        return (self.what, self.mount_point, self.type, self.options, self.dump, self.passno) == (
            other.what, other.mount_point, other.type, other.options, other.dump, other.passno,
        )  # fmt: skip

    def render(self) -> str:
        """The entry as one fstab line, six fields, without a newline."""
        fields = [self.what, self.where, self.type, self.options]
        if not all(fields):
            raise ValueError(f"an fstab entry needs what, where, type and options: {self!r}")
        return " ".join([*map(_encode, fields), str(self.dump), str(self.passno)])

    def marker(self) -> str:
        """The comment that marks this entry as picl's, for the line right above it."""
        origin = f" ({self.origin})" if self.origin else ""
        return f"{MARKER}{origin}; edit the spec, not this line"


def _parse_entry(text: str) -> FstabEntry | None:
    """The entry on a line, or None for comments, blank lines and lines mount would ignore."""
    # libmount trims the line's end as white space, so a CRLF file reads like an LF one.
    stripped = text.lstrip(" \t").rstrip(" \t\r\v\f")
    if not stripped or stripped.startswith("#"):
        return None
    words = _BLANKS.split(stripped)
    # libmount needs source, target and type; options, dump and passno are optional.
    if len(words) < 3:
        return None
    numbers = words[4:6]
    if not all(n.isdigit() for n in numbers):
        return None
    dump, passno = ([int(n) for n in numbers] + [0, 0])[:2]
    options = _decode(words[3]) if len(words) > 3 else "defaults"
    return FstabEntry(_decode(words[0]), _decode(words[1]), _decode(words[2]), options, dump,
                      passno)  # fmt: skip


@dataclass(frozen=True)
class FstabLine:
    """One line: its text exactly as in the file, and its newline ('' if the file ends without)."""

    text: str
    newline: str = "\n"
    entry: FstabEntry | None = None

    @classmethod
    def of(cls, text: str, newline: str = "\n") -> FstabLine:
        return cls(text, newline, _parse_entry(text))

    @property
    def origin(self) -> str | None:
        """For picl's marker line, what it says the entry below comes from; else None."""
        match = _MARKER.match(self.text)
        return (match.group("origin") or "") if match else None


@dataclass(frozen=True)
class Fstab:
    """An fstab document: every line, in order, as it was read."""

    lines: tuple[FstabLine, ...]

    @classmethod
    def parse(cls, content: str | bytes) -> Fstab:
        """Read fstab text (bytes that are not UTF-8 are kept as they are)."""
        text = content.decode("utf-8", "surrogateescape") if isinstance(content, bytes) else content
        parts = text.split("\n")
        lines = [FstabLine.of(part) for part in parts[:-1]]
        if parts[-1]:
            lines.append(FstabLine.of(parts[-1], newline=""))
        return cls(tuple(lines))

    @property
    def text(self) -> str:
        return "".join(line.text + line.newline for line in self.lines)

    @property
    def data(self) -> bytes:
        """The document as the bytes to write to the file."""
        return self.text.encode("utf-8", "surrogateescape")

    @property
    def entries(self) -> list[FstabEntry]:
        """Every entry, picl's or not, in file order."""
        return [line.entry for line in self.lines if line.entry is not None]

    def owned(self) -> dict[int, FstabEntry]:
        """picl's entries by line number (0-based): those right below picl's marker.

        A marker above a system entry gives picl nothing: those lines are never picl's.
        """
        owned: dict[int, FstabEntry] = {}
        for i, line in enumerate(self.lines[:-1]):
            below = self.lines[i + 1].entry
            if line.origin is not None and below is not None and not below.system:
                owned[i + 1] = replace(below, origin=line.origin)
        return owned

    def stray_markers(self) -> list[int]:
        """picl's marker lines with no entry below them (someone deleted the entry)."""
        return [
            i
            for i, line in enumerate(self.lines)
            if line.origin is not None
            and (i + 1 == len(self.lines) or self.lines[i + 1].entry is None)
        ]


@dataclass(frozen=True)
class FstabConflict:
    """A mount point picl wants that a line it does not own already uses differently."""

    wanted: FstabEntry
    found: str = ""

    def __str__(self) -> str:
        where = self.wanted.where
        if not self.found:
            return f"{where} is a system mount point: picl never manages it"
        return (
            f"{where}: /etc/fstab already has {shown(self.found.strip())!r}, which picl did not "
            f"write; remove it or make it read {shown(self.wanted.render())!r} and picl adopts it"
        )


class FstabConflicts(PiclError):
    """The spec wants mount points that /etc/fstab already uses for something else."""

    def __init__(self, node: str, conflicts: Sequence[FstabConflict]):
        self.node = node
        self.conflicts = tuple(conflicts)
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"{self.node}: {conflict}" for conflict in self.conflicts]


@dataclass(frozen=True)
class FstabEdit:
    """What `plan_fstab` decided: the new text, and each change by kind.

    The on-node transaction unmounts `unmount` before it writes `text` (a busy mount point
    leaves the file untouched), and mounts `mount` after writing it.
    """

    before: str
    text: str
    added: tuple[FstabEntry, ...] = ()
    changed: tuple[tuple[FstabEntry, FstabEntry], ...] = ()
    removed: tuple[FstabEntry, ...] = ()
    adopted: tuple[FstabEntry, ...] = ()
    conflicts: tuple[FstabConflict, ...] = ()
    # picl's mount points in file order, before and after: what the plan shows changing.
    owned_before: tuple[str, ...] = ()
    owned_after: tuple[str, ...] = ()

    @property
    def changes(self) -> bool:
        """The file's text changes (a marker alone counts: after apply the plan is empty)."""
        return self.text != self.before

    @property
    def data(self) -> bytes:
        """The new file as bytes, foreign bytes exactly as read."""
        return self.text.encode("utf-8", "surrogateescape")

    @property
    def unmount(self) -> tuple[str, ...]:
        """Mount points to unmount before the file is written: removed and changed entries."""
        return tuple(e.where for e in self.removed) + tuple(old.where for old, _ in self.changed)

    @property
    def mount(self) -> tuple[str, ...]:
        """Mount points to mount (and check with findmnt) after the file is written."""
        return tuple(e.where for e in self.added) + tuple(new.where for _, new in self.changed)

    def raise_for_conflicts(self, node: str) -> None:
        """Raise FstabConflicts if any mount point the spec wants is taken by a foreign line."""
        if self.conflicts:
            raise FstabConflicts(node, self.conflicts)


@dataclass(frozen=True)
class FstabIndex:
    """A file's entries by mount point: picl's (line numbers) and everyone else's."""

    fstab: Fstab
    owned: dict[int, FstabEntry]
    mine: dict[str, list[int]]
    foreign: dict[str, list[tuple[int, FstabEntry]]]


def index(fstab: Fstab) -> FstabIndex:
    """Where each mount point stands in `fstab`."""
    owned = fstab.owned()
    mine: dict[str, list[int]] = {}
    foreign: dict[str, list[tuple[int, FstabEntry]]] = {}
    for i, line in enumerate(fstab.lines):
        if i in owned:
            mine.setdefault(owned[i].mount_point, []).append(i)
        elif line.entry is not None:
            foreign.setdefault(line.entry.mount_point, []).append((i, line.entry))
    return FstabIndex(fstab, owned, mine, foreign)


@dataclass
class FstabResolution:
    """What happens to each line and mount point: the edit before it is written out."""

    instead: dict[int, list[FstabLine]] = field(default_factory=dict)  # line -> its replacement
    drop: set[int] = field(default_factory=set)
    added: list[FstabEntry] = field(default_factory=list)
    changed: list[tuple[FstabEntry, FstabEntry]] = field(default_factory=list)
    adopted: list[FstabEntry] = field(default_factory=list)
    removed: list[FstabEntry] = field(default_factory=list)
    conflicts: list[FstabConflict] = field(default_factory=list)


def _wanted(desired: Iterable[FstabEntry], found: FstabResolution) -> dict[str, FstabEntry]:
    """The desired entries by mount point; a system mount point is a conflict, never wanted."""
    wanted: dict[str, FstabEntry] = {}
    for entry in desired:
        if entry.mount_point in wanted:
            raise ValueError(f"two entries wanted for {entry.where}")
        if entry.system:
            found.conflicts.append(FstabConflict(entry))
        else:
            wanted[entry.mount_point] = entry
    return wanted


def resolve(where: FstabIndex, desired: Iterable[FstabEntry]) -> FstabResolution:
    """Decide, per mount point, whether its lines are kept, rewritten, adopted, added or
    dropped; a mount point a foreign line uses differently is a conflict, left as it is."""
    lines, owned = where.fstab.lines, where.owned
    found = FstabResolution(drop=set(where.fstab.stray_markers()))
    wanted = _wanted(desired, found)
    blocked: set[str] = set()
    for point, want in wanted.items():
        others = where.foreign.get(point, [])
        different = [lines[i].text for i, entry in others if not entry.same_mount(want)]
        if different:
            found.conflicts.append(FstabConflict(want, different[0]))
            blocked.add(point)
        elif point in where.mine:
            first, *duplicates = where.mine[point]
            have = owned[first]
            if not have.same_mount(want):
                found.changed.append((have, want))
                found.instead[first] = [FstabLine.of(want.render(), lines[first].newline)]
            if have.origin != want.origin or not have.same_mount(want):
                found.instead[first - 1] = [FstabLine.of(want.marker())]
            for i in duplicates:
                found.drop.update((i - 1, i))
        elif others:
            i, entry = others[0]
            found.adopted.append(replace(entry, origin=want.origin))
            found.instead[i] = [FstabLine.of(want.marker()), lines[i]]
        else:
            found.added.append(want)
    for point, indexes in where.mine.items():
        if point not in wanted and point not in blocked:
            found.removed.append(owned[indexes[0]])
            for i in indexes:
                found.drop.update((i - 1, i))
    return found


def _written(fstab: Fstab, found: FstabResolution) -> Fstab:
    """The file with the resolution applied: new entries at the end, each below its marker."""
    result: list[FstabLine] = []
    for i, line in enumerate(fstab.lines):
        if i not in found.drop:
            result.extend(found.instead.get(i, [line]))
    if found.added and result and not result[-1].newline:
        result[-1] = replace(result[-1], newline="\n")
    for entry in found.added:
        result += [FstabLine.of(entry.marker()), FstabLine.of(entry.render())]
    return Fstab(tuple(result))


def plan_fstab(current: str | bytes, desired: Iterable[FstabEntry]) -> FstabEdit:
    """The fstab that gives a node exactly the `desired` entries, changing only picl's lines.

    - a desired entry picl already owns is rewritten if it differs (with its marker);
    - a foreign entry identical to a desired one is adopted: a marker is put above it;
    - a foreign entry for a desired mount point that differs is a conflict: nothing is done
      for that mount point, and picl's own line for it (if any) is left as it is;
    - picl's entries the spec no longer wants are removed, with their markers;
    - new entries go at the end, each below its marker;
    - system mount points and swap are never picl's: wanting one is a conflict.
    """
    where = index(Fstab.parse(current))
    found = resolve(where, desired)
    after = _written(where.fstab, found)
    return FstabEdit(
        before=where.fstab.text,
        text=after.text,
        added=tuple(found.added),
        changed=tuple(found.changed),
        removed=tuple(found.removed),
        adopted=tuple(found.adopted),
        conflicts=tuple(found.conflicts),
        owned_before=tuple(e.where for e in where.owned.values()),
        owned_after=tuple(e.where for e in after.owned().values()),
    )


def nfs_client_options(share: Share) -> str:
    """Mount options for a share's clients: read-only if the export is, and boot-safe."""
    access = "ro" if "ro" in share.options.split(",") else "rw"
    return ",".join([access, *NFS_CLIENT_OPTIONS])


def fstab_entries(cluster: Cluster, node: Node | str) -> list[FstabEntry]:
    """The entries the spec wants in `node`'s fstab: its shares' mounts, then `[[mounts]]`.

    A share's clients mount the server's export by the server's wired address (no name
    resolution at boot); the server itself does not mount its own share.
    """
    name = node if isinstance(node, str) else node.name
    entries: list[FstabEntry] = []
    for share in cluster.shares:
        clients = [n.name for n in cluster.selected(share.clients)]
        if name == share.server or name not in clients:
            continue
        server = cluster.node(share.server)
        entries.append(FstabEntry(
            what=f"{server.address}:{share.export}",
            where=share.mount,
            type="nfs",
            options=nfs_client_options(share),
            origin=f"cluster.toml [[shares]] {share.name}",
        ))  # fmt: skip
    for mount in cluster.mounts:
        if name in [n.name for n in cluster.selected(mount.nodes)]:
            entries.append(FstabEntry(
                what=mount.what,
                where=mount.where,
                type=mount.type,
                options=mount.options,
                origin=f"cluster.toml [[mounts]] {mount.where}",
            ))  # fmt: skip
    return entries
