# picl's fstab transaction: replace /etc/fstab verified, backed up, atomically, and undo every
# step on any failure. Run after fstab-mount.sh, with its inputs set as shell variables before
# it (deploy/mounts.py): nothing secret is among them, the new file's bytes are in DATA.
#   F        the fstab to replace            B       where its backups go (fstab.1 the newest)
#   KEEP     how many backups are kept       DATA    the new file, uploaded beside it
#   BEFORE   sha256 of the file the plan read, or "absent" when there was none
#   UNMOUNT  mount points to unmount before the file is replaced (words: no white space)
#   MOUNT    mount points to mount, and check with findmnt, once it is
set -u
D=${F%/*}  # the new file is written beside the old one: the rename is atomic
rm -f "$D"/.fstab.picl.*  # what an apply killed before its rename left
set -f  # mount points are words, never patterns
NEW=$(mktemp "$D/.fstab.picl.XXXXXX") || exit 1
S=$(mktemp -d)
trap 'rm -rf "$S"; rm -f "$NEW" "$DATA"' EXIT
replaced=0 mounted='' unmounted='' created=''
# Replace the file with $1 atomically: written and synced beside it, renamed, directory synced.
replace() { sync "$1" && mv -f "$1" "$F" && sync "$D"; }
undo() {
  if [ $replaced = 1 ]; then
    if [ "$BEFORE" = absent ]; then rm -f "$F"; sync "$D"
    else cp -p "$B/fstab.1" "$NEW" && replace "$NEW"; fi
    systemctl daemon-reload
  fi
  for t in $mounted; do unmount_point "$t" || say "$t: left mounted"; done
  for t in $unmounted; do mount_point "$t" || say "$t: left unmounted"; done
  for t in $created; do rmdir "$t" 2>/dev/null; done
}
fail() { say "$*"; undo; exit 1; }
# One line per error: "TARGET: message"; parse errors counted apart (their line numbers move).
verify() {
  findmnt --verify --tab-file "$1" 2>"$S/$2.stderr" | awk '
    /^[^ \t]/ { target = $0; next }
    /\[E\]/ { sub(/^[ \t]*\[E\][ \t]*/, ""); print target ": " $0 }' | sort -u > "$S/$2"
  grep -c 'parse error at line' "$S/$2.stderr" > "$S/$2.parse"
}

have=absent
[ -e "$F" ] && have=$(sha256sum < "$F" | cut -c1-64)
[ "$have" = "$BEFORE" ] || { say "$F changed since the plan read it: plan again"; exit 1; }
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
[ "$(cat "$S/new.parse")" -le "$(cat "$S/old.parse")" ] || \
  fail "findmnt --verify: $(sed "s|$NEW|$F|" "$S/new.stderr")"
if [ -e "$F" ]; then
  mkdir -p "$B"
  for i in $(seq $((KEEP - 1)) -1 1); do
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
