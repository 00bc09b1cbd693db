"""Client mounts: the entries `[[shares]]` and `[[mounts]]` want in /etc/fstab, made safely.

The plan shows the lines added and removed (a conflicting line picl did not write blocks its
mount point, shown in the plan and never overwritten). Apply runs one transaction on the node,
`fstab_transaction`, under confirm-or-revert: the file is replaced only once the candidate
verifies and what it removes is unmounted, and is put back byte for byte if anything after
fails. A rename replaces it, so an apply killed at any instant leaves the old or the new file.
"""

from __future__ import annotations

import hashlib
import shlex
from functools import cache
from importlib.resources import files

from picl.deploy.changes import Attribute, Change, Guard, Step, operation, text_diff
from picl.deploy.commands import upload
from picl.deploy.fstab import FstabEdit, fstab_entries, plan_fstab, shown
from picl.deploy.view import ClusterFacts, NodeView
from picl.facts.node import Reads
from picl.spec import Cluster, Node

FSTAB = "/etc/fstab"
BACKUPS = "/var/backups/picl"
KEEP = 5  # backups: /var/backups/picl/fstab.1 (the newest) to fstab.5
MOUNT_TIMEOUT = 30  # seconds a mount may take (an NFS server that does not answer)
ABSENT = "absent"  # BEFORE when the plan found no fstab, as fstab-transaction.sh reads it
# The mount helpers a filesystem type needs (mount.nfs, mount.cifs, sshfs): Debian packages.
MOUNT_HELPERS = {
    "nfs": "nfs-common", "nfs4": "nfs-common",
    "cifs": "cifs-utils", "smb3": "cifs-utils",
    "fuse.sshfs": "sshfs",
}


@cache
def shell(name: str) -> str:
    """One of the shell programs shipped in deploy/scripts, as text."""
    return (files("picl.deploy") / "scripts" / name).read_text()


def _inputs(**values: str | int) -> str:
    """Shell assignments that hand a program its inputs (never a secret: see fstab_transaction)."""
    return "".join(f"{key}={shlex.quote(str(value))}\n" for key, value in values.items())


def digest(data: bytes | None) -> str:
    """What the transaction checks the node's fstab against before touching it."""
    return ABSENT if data is None else hashlib.sha256(data).hexdigest()


@operation(is_idempotent=False)
def fstab_transaction(data: bytes, before: str, unmount: list[str], mount: list[str]):
    """
    Replace /etc/fstab as one transaction: verified, backed up, atomic, undone on any failure.

    + data: the new file, byte for byte
    + before: sha256 of the file the plan read (`absent` when there was none)
    + unmount: mount points to unmount before the file is replaced
    + mount: mount points to mount (and check with findmnt) once it is

    The candidate must add no error to `findmnt --verify`; the previous file is kept in
    /var/backups/picl/fstab.1 (the last five). On any failure the previous bytes go back,
    systemd reloads, and the mount's own error is the operation's.
    """
    from pyinfra.api import StringCommand

    # The file goes up on its own, never in the command: a CIFS line may hold a password.
    staged = yield from upload(data)
    inputs = _inputs(
        F=FSTAB, B=BACKUPS, KEEP=KEEP, MOUNT_TIMEOUT=MOUNT_TIMEOUT, DATA=staged, BEFORE=before,
        UNMOUNT=" ".join(unmount),  # mount points: no white space (checks.absolute_path)
        MOUNT=" ".join(mount),
    )
    yield StringCommand(inputs + shell("fstab-mount.sh") + shell("fstab-transaction.sh"))


def guard(edit: FstabEdit) -> Guard:
    """What the dead-man switch undoes: the file, then the mounts the transaction changed."""
    quoted = [shlex.quote(e.where) for e in edit.added] + [
        shlex.quote(new.where) for _, new in edit.changed]
    restore = [_inputs(MOUNT_TIMEOUT=MOUNT_TIMEOUT) + shell("fstab-mount.sh").strip(),
               "systemctl daemon-reload"]
    restore += [f"unmount_point {t}" for t in quoted]
    # The transaction may have failed before it unmounted them: mount only what is not.
    restore += [f"findmnt -rn --mountpoint {q} >/dev/null || mount_point {q}"
                for q in map(shlex.quote, edit.unmount)]
    return Guard(files=(FSTAB,), restore=tuple(restore))


def reads(cluster: Cluster, node: Node, shared: ClusterFacts) -> Reads:
    """/etc/fstab, byte for byte: it is written back so, whatever its encoding."""
    return Reads(files=(FSTAB,))


def needs(cluster: Cluster, node: Node) -> tuple[str, ...]:
    """The helpers of the filesystems the node mounts (trixie's Lite image has no nfs-common)."""
    types = [entry.type for entry in fstab_entries(cluster, node)]
    return tuple(dict.fromkeys(MOUNT_HELPERS[t] for t in types if t in MOUNT_HELPERS))


def changes(view: NodeView) -> list[Change]:
    """The node's fstab: one change with its text diff; a blocked change per conflict."""
    current = view.observed.data(FSTAB)
    desired = fstab_entries(view.cluster, view.node)
    if current is None and not desired:
        return []
    edit = plan_fstab(current or b"", desired)
    found = [
        Change(f"mount {conflict.wanted.where}", "create", blocked=str(conflict))
        for conflict in edit.conflicts
    ]
    if edit.changes:
        step = Step(fstab_transaction, {
            "data": edit.data,
            "before": digest(current),
            "unmount": list(edit.unmount),
            "mount": list(edit.mount),
        }, shown=shown)  # findmnt's and mount's errors name a line's source, password and all
        found.append(Change(
            "fstab",
            "create" if current is None else "update",
            (Attribute("mounts", list(edit.owned_before), list(edit.owned_after)),)
            if edit.owned_before != edit.owned_after else (),
            # Diffed as written, shown with credentials hidden: the context lines too.
            diff=shown(text_diff(FSTAB, None if current is None else edit.before, edit.text)),
            steps=(step,),
            guard=guard(edit),
        ))
    return found
