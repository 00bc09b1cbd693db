"""The network concern: the node's wired and Wi-Fi links, under confirm-or-revert.

deploy.network_files renders the files for the node's backend; this module compares them with the
node and makes the change: the files written (secrets mode 600, never shown), then the backend
told, all under the dead-man switch, which puts the files back and re-activates what was
active if picl cannot reach the node over a new connection afterwards.
"""

from __future__ import annotations

import dataclasses
import hashlib
import posixpath
import re

from picl.deploy.changes import Attribute, Change, Guard, Step, text_diff
from picl.deploy.commands import command, put, sh
from picl.deploy.network_files import (
    BACKEND_FILES,
    BACKEND_UNITS,
    DHCPCD_CONF,
    OWNED_FILES,
    WIFI_KEYFILE,
    WIRED_KEYFILE,
    WPA_SUPPLICANT_CONF,
    Backend,
    NetworkError,
    Rendered,
    detect_backend,
    dhcpcd_conf,
    network_files,
    wired_keyfile,
)
from picl.deploy.view import ClusterFacts, NodeView
from picl.facts.node import Reads
from picl.spec import Cluster, Node

_UUID = re.compile(r"^uuid=(\S+)$", re.MULTILINE)
# Before a change: each device's active profile, to bring back if the change is undone.
NM_ACTIVE = "nm-active"

GUARDS: dict[Backend, Guard] = {
    "networkmanager": Guard(
        files=OWNED_FILES["networkmanager"],
        capture=(f"nmcli -t -f DEVICE,TYPE,CON-UUID device > {NM_ACTIVE} || true",),
        restore=(
            "nmcli connection reload",
            "while IFS=: read -r dev kind uuid; do "
            '[ "$kind" = loopback ] || [ -z "$uuid" ] || '
            f'nmcli --wait 30 connection up uuid "$uuid" ifname "$dev"; done < {NM_ACTIVE}',
        ),
    ),
    "dhcpcd": Guard(
        files=(DHCPCD_CONF, WPA_SUPPLICANT_CONF),
        restore=("systemctl restart dhcpcd",),
    ),
}


def backend(view: NodeView) -> Backend:
    """The node's network backend; NetworkError on anything picl does not configure."""
    observed = view.observed
    enabled = [unit for unit, (state, _) in observed.units.items() if state == "enabled"]
    wifi = view.cluster.network.wifi is not None
    return detect_backend(view.node.name, enabled, observed.existing, wifi=wifi)


def _wanted(view: NodeView, kind: Backend) -> tuple[list[Rendered], set[str]]:
    """The files to write, and the owned paths to leave alone (Wi-Fi without its secret)."""
    cluster, node = view.cluster, view.node
    wifi = cluster.network.wifi
    if wifi is not None and cluster.secret(wifi.psk) is None:
        # No secrets loaded: the Wi-Fi configuration stays as the node has it.
        current = view.observed.file(DHCPCD_CONF)
        wired = wired_keyfile(cluster, node) if kind == "networkmanager" else dhcpcd_conf(
            cluster, node, current)
        return [wired], {WIFI_KEYFILE, WPA_SUPPLICANT_CONF}
    return network_files(cluster, node, kind, view.observed.file(DHCPCD_CONF)), set()


def _same(view: NodeView, rendered: Rendered) -> tuple[bool, bool]:
    """(content is the same, the file exists) for a rendered file on the node."""
    observed = view.observed
    if rendered.sensitive:
        have = observed.digests.get(rendered.path)
        return have == hashlib.sha256(rendered.content.encode()).hexdigest(), have is not None
    text = observed.file(rendered.path)
    return text == rendered.content, text is not None


def _activate(kind: Backend, changed: list[Rendered]) -> Step:
    """Tell the backend: NetworkManager loads and brings up the changed profiles."""
    if kind == "dhcpcd":
        return sh("systemctl restart dhcpcd")
    commands = ["nmcli connection reload"]
    for rendered in changed:
        match = _UUID.search(rendered.content)
        if match is None:
            continue
        up = command("nmcli", "--wait", "30", "connection", "up", "uuid", match[1])
        if rendered.path == WIFI_KEYFILE:
            # Without a Wi-Fi device (a lab node) the profile waits for one to appear.
            up = f"if nmcli -t -f TYPE device | grep -qx wifi; then {up}; fi"
        commands.append(up)
    return sh(*commands)


def changes(view: NodeView) -> list[Change]:
    """The node's network files, written and activated as one guarded change per file."""
    try:
        kind = backend(view)
        wanted, keep = _wanted(view, kind)
    except NetworkError as exc:
        return [Change("network", "update", blocked=str(exc))]
    guard = GUARDS[kind]
    found: list[Change] = []
    changed: list[Rendered] = []
    for rendered in wanted:
        same, exists = _same(view, rendered)
        stat = view.observed.stats.get(rendered.path)
        mode = stat.mode if stat else None
        if same and mode == rendered.mode:
            continue
        changed.append(rendered)
        before = None if rendered.sensitive or not exists else view.observed.file(rendered.path)
        shown = [Attribute("mode", mode, rendered.mode)] if exists and mode != rendered.mode else []
        if rendered.sensitive and not same:
            shown.append(Attribute("content", None, None, sensitive=True))
        found.append(Change(
            f"network {posixpath.basename(rendered.path)}",
            "update" if exists else "create",
            tuple(shown),
            diff="" if same or rendered.sensitive else text_diff(rendered.path, before,
                                                                  rendered.content),
            steps=(put(rendered.path, rendered.content, mode=rendered.mode),),
            sensitive=rendered.sensitive,
            guard=guard,
        ))
    paths = {r.path for r in wanted} | keep
    for path in OWNED_FILES[kind]:
        if path in paths:
            continue
        if view.observed.file(path) is not None or view.observed.digests.get(path) is not None:
            found.append(Change(f"network {posixpath.basename(path)}", "remove",
                                steps=(sh(command("rm", "-f", path)),), guard=guard))
    if found:  # the backend is told once, after the last file
        last = found[-1]
        found[-1] = dataclasses.replace(last, steps=(*last.steps, _activate(kind, changed)))
    return found


# The backend's units and programs, and the files it reads (the secret ones by digest).
READS = Reads(files=(WIRED_KEYFILE, DHCPCD_CONF), secret_files=(WIFI_KEYFILE, WPA_SUPPLICANT_CONF),
              exists=BACKEND_FILES, units=BACKEND_UNITS)


def reads(cluster: Cluster, node: Node, shared: ClusterFacts) -> Reads:
    return READS
