# Mounting and unmounting one mount point: shared by picl's fstab transaction and by the
# dead-man switch that undoes it (deploy/mounts.py sends this text before either).
# Input: MOUNT_TIMEOUT, the seconds a mount may take (an NFS server that does not answer).
# An automount entry is "mounted" when its autofs trigger is: nothing is fetched until used.
# Containers (the lab) cannot run automount units: there such an entry is checked by its
# configuration only, as it would be at boot.
say() { printf '%s\n' "$*" >&2; }
automount_unit() { systemd-escape --path --suffix=automount "$1"; }
mount_point() {
  case ",$(findmnt --fstab -rn -o OPTIONS --mountpoint "$1" | head -n1)," in
    *,x-systemd.automount,*)
      if ! out=$(systemctl start "$(automount_unit "$1")" 2>&1); then
        systemd-detect-virt --container -q && return 0
        say "$1: $out"; return 1
      fi ;;
    *) timeout "$MOUNT_TIMEOUT" mount "$1" || return 1 ;;
  esac
  findmnt -rn --mountpoint "$1" >/dev/null || { say "$1: not mounted after mount"; return 1; }
}
unmount_point() {
  n=0
  while top=$(findmnt -rn -o FSTYPE --mountpoint "$1" | tail -n1) && [ -n "$top" ]; do
    n=$((n + 1)); [ $n -le 4 ] || { say "$1: still mounted"; return 1; }
    if [ "$top" = autofs ]; then systemctl stop "$(automount_unit "$1")" || return 1
    else umount "$1" || return 1; fi
  done
}
