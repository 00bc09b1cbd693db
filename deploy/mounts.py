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

from pyinfra.api import StringCommand, operation

from picl.deploy.changes import Attribute, Change, Guard, Step, text_diff
from picl.deploy.commands import upload
from picl.deploy.fstab import Fstab, FstabEdit, fstab_entries, plan_fstab, shown
from picl.deploy.view import ClusterFacts, NodeView
from picl.facts.node import Reads
from picl.spec import Cluster, Node

FSTAB = "/etc/fstab"
BACKUPS = "/var/backups/picl"
KEEP = 5  # backups: /var/backups/picl/fstab.1 (the newest) to fstab.5
MOUNT_TIMEOUT = 30  # seconds a mount may take (an NFS server that does not answer)
ABSENT = "absent"
# The mount helpers a filesystem type needs (mount.nfs, mount.cifs, sshfs): Debian packages.
MOUNT_HELPERS = {
    "nfs": "nfs-common", "nfs4": "nfs-common",
    "cifs": "cifs-utils", "smb3": "cifs-utils",
    "fuse.sshfs": "sshfs",
}

# Mounting and unmounting one mount point, shared by the transaction and the dead-man switch.
# An automount entry is "mounted" when its autofs trigger is: nothing is fetched until used.
# Containers (the lab) cannot run automount units: there such an entry is checked by its
# configuration only, as it would be at boot.
HELPERS = f"""\
say() {{ printf '%s\\n' "$*" >&2; }}
automount_unit() {{ systemd-escape --path --suffix=automount "$1"; }}
mount_point() {{
  case ",$(findmnt --fstab -rn -o OPTIONS --mountpoint "$1" | head -n1)," in
    *,x-systemd.automount,*)
      if ! out=$(systemctl start "$(automount_unit "$1")" 2>&1); then
        systemd-detect-virt --container -q && return 0
        say "$1: $out"; return 1
      fi ;;
    *) timeout {MOUNT_TIMEOUT} mount "$1" || return 1 ;;
  esac
  findmnt -rn --mountpoint "$1" >/dev/null || {{ say "$1: not mounted after mount"; return 1; }}
}}
unmount_point() {{
  n=0
  while top=$(findmnt -rn -o FSTYPE --mountpoint "$1" | tail -n1) && [ -n "$top" ]; do
    n=$((n + 1)); [ $n -le 4 ] || {{ say "$1: still mounted"; return 1; }}
    if [ "$top" = autofs ]; then systemctl stop "$(automount_unit "$1")" || return 1
    else umount "$1" || return 1; fi
  done
}}
"""

TRANSACTION = f"""\
set -u
F={FSTAB}
B={BACKUPS}
{HELPERS}
rm -f /etc/.fstab.picl.*  # what an apply killed before its rename left
set -f  # mount points are words, never patterns
NEW=$(mktemp /etc/.fstab.picl.XXXXXX) || exit 1
S=$(mktemp -d)
trap 'rm -rf "$S"; rm -f "$NEW" "$DATA"' EXIT
replaced=0 mounted='' unmounted='' created=''
# Replace the file with $1 atomically: written and synced beside it, renamed, directory synced.
replace() {{ sync "$1" && mv -f "$1" "$F" && sync /etc; }}
undo() {{
  if [ $replaced = 1 ]; then
    if [ "$BEFORE" = {ABSENT} ]; then rm -f "$F"; sync /etc
    else cp -p "$B/fstab.1" "$NEW" && replace "$NEW"; fi
    systemctl daemon-reload
  fi
  for t in $mounted; do unmount_point "$t" || say "$t: left mounted"; done
  for t in $unmounted; do mount_point "$t" || say "$t: left unmounted"; done
  for t in $created; do rmdir "$t" 2>/dev/null; done
}}
fail() {{ say "$*"; undo; exit 1; }}
# One line per error: "TARGET: message"; parse errors counted apart (their line numbers move).
verify() {{
  findmnt --verify --tab-file "$1" 2>"$S/$2.stderr" | awk '
    /^[^ \\t]/ {{ target = $0; next }}
    /\\[E\\]/ {{ sub(/^[ \\t]*\\[E\\][ \\t]*/, ""); print target ": " $0 }}' | sort -u > "$S/$2"
  grep -c 'parse error at line' "$S/$2.stderr" > "$S/$2.parse"
}}

have=absent
[ -e "$F" ] && have=$(sha256sum < "$F" | cut -c1-64)
[ "$have" = "$BEFORE" ] || {{ say "$F changed since the plan read it: plan again"; exit 1; }}
cat -- "$DATA" > "$NEW" || fail "cannot write the new $F"
chmod 0644 "$NEW"
for t in $MOUNT; do
  [ -d "$t" ] && continue
  mkdir -p "$t" || fail "$t: cannot create the mount point"
  created="$t $created"
done
verify "$NEW" new
if [ -e "$F" ]; then verify "$F" old; else : > "$S/old"; echo 0 > "$S/old.parse"; fi
errors=$(comm -23 "$S/new" "$S/old")
[ -z "$errors" ] || fail "findmnt --verify: $errors"
[ "$(cat "$S/new.parse")" -le "$(cat "$S/old.parse")" ] || \\
  fail "findmnt --verify: $(sed "s|$NEW|$F|" "$S/new.stderr")"
if [ -e "$F" ]; then
  mkdir -p "$B"
  for i in $(seq {KEEP - 1} -1 1); do
    [ -e "$B/fstab.$i" ] && mv -f "$B/fstab.$i" "$B/fstab.$((i + 1))"
  done
  cp -p "$F" "$B/fstab.1" && sync "$B/fstab.1" || fail "cannot back up $F to $B"
fi
# Removal unmounts first and edits after: a busy mount point leaves the file as it was.
for t in $UNMOUNT; do
  unmount_point "$t" || fail "$t: cannot unmount it; $F left as it was"
  unmounted="$t $unmounted"
done
replace "$NEW" || fail "cannot replace $F"
replaced=1
systemctl daemon-reload || fail "systemctl daemon-reload failed"
for t in $MOUNT; do
  mount_point "$t" || fail "$t: cannot mount it; $F put back as it was"
  mounted="$t $mounted"
done
exit 0
"""


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
    # The file goes up on its own, never in the command: a CIFS line may hold a password.
    staged = yield from upload(data)
    variables = {
        "DATA": staged,
        "BEFORE": before,
        "UNMOUNT": " ".join(unmount),  # mount points: no white space (checks.absolute_path)
        "MOUNT": " ".join(mount),
    }
    head = "".join(f"{key}={shlex.quote(value)}\n" for key, value in variables.items())
    yield StringCommand(head + TRANSACTION)


def guard(edit: FstabEdit) -> Guard:
    """What the dead-man switch undoes: the file, then the mounts the transaction changed."""
    quoted = [shlex.quote(e.where) for e in edit.added] + [
        shlex.quote(new.where) for _, new in edit.changed]
    restore = [HELPERS.strip(), "systemctl daemon-reload"]
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
        mine = [e.where for e in Fstab.parse(current or b"").owned().values()]
        wanted = [e.where for e in Fstab.parse(edit.data).owned().values()]
        step = Step(fstab_transaction, {
            "data": edit.data,
            "before": digest(current),
            "unmount": list(edit.unmount),
            "mount": list(edit.mount),
        })
        found.append(Change(
            "fstab",
            "create" if current is None else "update",
            (Attribute("mounts", mine, wanted),) if mine != wanted else (),
            # Diffed as written, shown with credentials hidden: the context lines too.
            diff=shown(text_diff(FSTAB, None if current is None else edit.before, edit.text)),
            steps=(step,),
            guard=guard(edit),
        ))
    return found
