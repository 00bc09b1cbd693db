#!/bin/sh
# picl lab: nmcli on a node whose NetworkManager cannot run (emulated by qemu-user, which refuses
# the generic netlink socket NetworkManager opens at start). It answers what picl asks
# NetworkManager, from the same keyfiles: `connection reload` (profiles are read at each `up`),
# `connection up uuid U [ifname DEV]` (the profile's static IPv4 address, set with ip(8)) and
# `device` (each device, its type, the profile brought up on it). Anything else fails, saying so.
# Only the lab installs it, as /usr/local/bin/nmcli, on such nodes; Debian's nmcli is left in place.
set -eu
PROFILES=/etc/NetworkManager/system-connections
BROUGHT_UP=/run/picl-lab-nmcli  # one file per device: the uuid of the profile brought up on it

fail() { echo "Error: $*" >&2; exit "${code:-2}"; }

value() {  # FILE SECTION KEY: the key's value in that section of a keyfile
    awk -v section="[$2]" -v key="$3=" '/^\[/ { inside = ($0 == section) }
        inside && index($0, key) == 1 { print substr($0, length(key) + 1); exit }' "$1"
}

up() {  # UUID [DEVICE]
    file=$(grep -lxF "uuid=$1" "$PROFILES"/*.nmconnection 2>/dev/null | head -n1 || true)
    [ -n "$file" ] || code=10 fail "unknown connection '$1'."
    device=${2:-$(value "$file" connection interface-name)}
    [ -e "/sys/class/net/$device" ] || code=10 fail "device '$device' not found."
    if [ "$(value "$file" ipv4 method)" = manual ]; then
        address=$(value "$file" ipv4 address1)
        address=${address%%,*}  # no gateway: the lab's wired link has none
        current=$(ip -4 -o address show dev "$device" scope global | awk '{ print $4 }')
        if [ "$current" != "$address" ]; then
            ip -4 address flush dev "$device" scope global
            ip address add "$address" dev "$device"
        fi
    fi
    ip link set "$device" up
    mkdir -p "$BROUGHT_UP"
    echo "$1" > "$BROUGHT_UP/$device"
}

devices() {  # FIELDS (DEVICE, TYPE, CON-UUID), terse: one line per device
    for path in /sys/class/net/*; do
        device=${path##*/}
        kind=ethernet
        [ "$device" != lo ] || kind=loopback
        [ ! -e "$path/wireless" ] || kind=wifi
        uuid=$(cat "$BROUGHT_UP/$device" 2>/dev/null || true)
        line=
        for field in $(echo "$1" | tr , ' '); do
            case $field in
                DEVICE) item=$device ;;
                TYPE) item=$kind ;;
                CON-UUID) item=$uuid ;;
                *) fail "the lab's nmcli does not show the field '$field'" ;;
            esac
            line=${line:+$line:}$item
        done
        echo "$line"
    done
}

fields=DEVICE,TYPE,CON-UUID
while [ $# -gt 0 ]; do
    case $1 in
        -t|--terse) shift ;;
        -f|--fields) fields=$2; shift 2 ;;
        -w|--wait) shift 2 ;;
        *) break ;;
    esac
done
case "$*" in
    "connection reload") ;;
    "connection up uuid "*) shift 3; up "$1" "${3:-}" ;;
    device|"device status") devices "$fields" ;;
    *) fail "the lab's nmcli stands in for NetworkManager, which cannot run on this emulated" \
            "node, and does not do '$*' (see picl's docs/lab.md)" ;;
esac
