"""Checks across sections of the spec (names that must exist, values that must be unique).

They run on the raw TOML data, beside the models' own validation, so that every problem in
the file is reported at once: a wrong type in one place does not hide a duplicate elsewhere.
Values of the wrong type are skipped here; the models report them.
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from picl.spec.checks import control_character
from picl.spec.locate import Loc, format_loc

Finding = tuple[Loc, str]


def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _tables(data: dict[str, Any], key: str) -> Iterator[tuple[int, dict[str, Any]]]:
    items = data.get(key)
    if isinstance(items, list):
        for i, item in enumerate(items):
            if isinstance(item, dict):
                yield i, item


def _duplicates(
    data: dict[str, Any], section: str, key: str, what: str, kind: type = str
) -> Iterator[Finding]:
    seen: dict[Any, int] = {}
    for i, table in _tables(data, section):
        value = table.get(key)
        if type(value) is not kind:  # the model reports it (false == 0 == 0.0 to Python)
            continue
        if value in seen:
            yield (section, i, key), f"{what} {value!r} is already used by {section}[{seen[value]}]"
        else:
            seen[value] = i


def _node_names(data: dict[str, Any]) -> list[str]:
    return [t["name"] for _, t in _tables(data, "nodes") if isinstance(t.get("name"), str)]


def _names_nodes(loc: Loc, value: Any, nodes: list[str]) -> Iterator[Finding]:
    """A `nodes`/`clients`/`server`/`controller` value must name nodes of the spec."""
    one = loc[-1] in ("server", "controller")  # a single node's name
    if isinstance(value, str) and (one or value != "all"):
        value = [value] if one else None
    if not isinstance(value, list):
        return
    for j, name in enumerate(value):
        if isinstance(name, str) and name not in nodes:
            where = loc if one else (*loc, j)
            yield where, f"{name!r} is not a node of this cluster{did_you_mean(name, nodes)}"


def check_nodes(data: dict[str, Any]) -> Iterator[Finding]:
    yield from _duplicates(data, "nodes", "name", "node name")
    yield from _duplicates(data, "nodes", "address", "address")
    network = data.get("network")
    subnet = network.get("subnet") if isinstance(network, dict) else None
    try:
        net = ipaddress.IPv4Network(subnet) if isinstance(subnet, str) else None
    except ValueError:
        net = None  # the model reports the subnet itself
    if net is None:
        return
    for i, node in _tables(data, "nodes"):
        written = node.get("address")
        if not isinstance(written, str):
            continue  # the model reports it: an integer is no address
        try:
            address = ipaddress.IPv4Address(written)
        except ValueError:
            continue
        if address not in net:
            yield ("nodes", i, "address"), f"{address} is outside network.subnet {net}"
        elif net.prefixlen < 31 and address in (net.network_address, net.broadcast_address):
            kind = "network" if address == net.network_address else "broadcast"
            yield ("nodes", i, "address"), f"{address} is the {kind} address of {net}"


def check_primary(data: dict[str, Any]) -> Iterator[Finding]:
    info = data.get("cluster")
    primary = info.get("primary") if isinstance(info, dict) else None
    nodes = _node_names(data)
    if isinstance(primary, str) and nodes and primary not in nodes:
        yield ("cluster", "primary"), (
            f"{primary!r} is not a node of this cluster{did_you_mean(primary, nodes)}"
        )


def check_users(data: dict[str, Any]) -> Iterator[Finding]:
    yield from _duplicates(data, "users", "name", "user name")
    yield from _duplicates(data, "users", "uid", "uid", int)
    gids: dict[int, int] = {}
    for i, user in _tables(data, "users"):
        name, uid = user.get("name"), user.get("uid")
        if isinstance(uid, int) and not isinstance(uid, bool):
            if uid == 0 and name != "root":
                yield ("users", i, "uid"), "uid 0 is root's alone"
            if name == "root" and uid != 0:
                yield ("users", i, "uid"), "root's uid is 0"
            gid = user.get("gid", uid)
            if isinstance(gid, int) and not isinstance(gid, bool):
                if gid in gids:
                    loc: Loc = ("users", i, "gid" if "gid" in user else "uid")
                    yield loc, f"gid {gid} is already used by users[{gids[gid]}]"
                else:
                    gids[gid] = i
    names = {u["name"] for _, u in _tables(data, "users") if isinstance(u.get("name"), str)}
    for i, user in _tables(data, "users"):
        old = user.get("rename_from")
        if isinstance(old, str) and old in names:
            yield ("users", i, "rename_from"), f"{old!r} is another user of this spec"


def _has_client(loc: Loc, server: Any, clients: Any, nodes: list[str]) -> Iterator[Finding]:
    """A share is mounted by at least one node besides its server.

    nfs-utils reads an exports line with no client as "every host": an empty client list must
    never reach the server, whether written `[]`, naming only the server, or `"all"` in a
    cluster of one node. Unknown names are reported on their own, not here.
    """
    if not nodes or not isinstance(clients, list):
        return
    if any(not isinstance(c, str) or c not in nodes for c in clients):
        return
    if not [c for c in clients if c != server]:
        why = "this cluster has no other node" if len(nodes) <= 1 else "clients names none"
        yield loc, (
            f"a share needs a client besides its server ({why}): "
            "an NFS export with no client is open to every host"
        )


def check_placement(data: dict[str, Any]) -> Iterator[Finding]:
    """Shares, mounts and files name real nodes and users; no mount point is used twice."""
    nodes = _node_names(data)
    users = [u["name"] for _, u in _tables(data, "users") if isinstance(u.get("name"), str)]
    yield from _duplicates(data, "shares", "name", "share name")
    mount_points: dict[tuple[str, str], Loc] = {}
    claims: list[tuple[Loc, Any, Any, Any]] = []
    for i, share in _tables(data, "shares"):
        yield from _names_nodes(("shares", i, "server"), share.get("server"), nodes)
        yield from _names_nodes(("shares", i, "clients"), share.get("clients", "all"), nodes)
        owner = share.get("owner")
        if isinstance(owner, str) and owner not in users:
            yield ("shares", i, "owner"), f"{owner!r} is not a user of this spec"
        # Clients "all" means every node but the server, which has the directory itself.
        clients = share.get("clients", "all")
        if clients == "all":
            clients = [n for n in nodes if n != share.get("server")]
        yield from _has_client(("shares", i, "clients"), share.get("server"), clients, nodes)
        claims.append((("shares", i, "mount"), share.get("mount"), clients, "share"))
    for i, mount in _tables(data, "mounts"):
        selection = mount.get("nodes", "all")
        yield from _names_nodes(("mounts", i, "nodes"), selection, nodes)
        claims.append((("mounts", i, "where"), mount.get("where"), selection, "mount"))
    for loc, point, selection, _ in claims:
        targets = nodes if selection == "all" else selection
        if not isinstance(point, str) or not isinstance(targets, list):
            continue
        for node in targets:
            if not isinstance(node, str):
                continue
            earlier = mount_points.setdefault((node, point), loc)
            if earlier != loc:
                yield loc, f"{point!r} on {node!r} is already mounted by {_dotted(earlier)}"
                break
    files: dict[tuple[str, str], Loc] = {}
    for i, managed in _tables(data, "files"):
        selection = managed.get("nodes", "all")
        yield from _names_nodes(("files", i, "nodes"), selection, nodes)
        path = managed.get("path")
        targets = nodes if selection == "all" else selection
        if isinstance(path, str) and isinstance(targets, list):
            for node in targets:
                earlier = files.setdefault((str(node), path), ("files", i, "path"))
                if earlier != ("files", i, "path"):
                    message = f"{path!r} on {node!r} is already {_dotted(earlier)}"
                    yield ("files", i, "path"), message
                    break


def _computing_nodes(data: dict[str, Any], section: str) -> Iterator[Finding]:
    """A section's `nodes` (the computing nodes, default all) are nodes of the spec, one at
    least."""
    table = data.get(section)
    if isinstance(table, dict):
        yield from _names_nodes((section, "nodes"), table.get("nodes", "all"), _node_names(data))
        if table.get("nodes") == []:
            yield (section, "nodes"), 'no computing node: name at least one, or "all"'


def check_mpi(data: dict[str, Any]) -> Iterator[Finding]:
    """[mpi]'s computing nodes are nodes of the spec."""
    yield from _computing_nodes(data, "mpi")


def check_slurm(data: dict[str, Any]) -> Iterator[Finding]:
    """[slurm]'s controller and computing nodes are nodes of the spec, and the cluster keeps one
    clock: munge refuses a credential made on a node whose clock is five minutes off."""
    slurm = data.get("slurm")
    if not isinstance(slurm, dict):
        return
    yield from _names_nodes(("slurm", "controller"), slurm.get("controller"), _node_names(data))
    yield from _computing_nodes(data, "slurm")
    time = data.get("time")
    if not isinstance(time, dict):
        yield ("slurm",), ("Slurm needs the cluster's one clock (munge refuses credentials "
                           "from a clock 5 minutes off): add [time] with serve = true")
    elif time.get("serve", False) is False:
        where: Loc = ("time", "serve") if "serve" in time else ("time",)
        yield where, ("[slurm] needs serve = true: the nodes keep the primary's clock, "
                      "offline too (munge refuses credentials from a clock 5 minutes off)")


def check_sources(data: dict[str, Any], base: Path) -> Iterator[Finding]:
    """A managed file's `source` is a file inside the repository that holds the spec."""
    root = base.resolve()
    for i, managed in _tables(data, "files"):
        source = managed.get("source")
        if not isinstance(source, str) or control_character(source) is not None:
            continue  # the model reports it; a NUL is no path to resolve
        try:
            target = (root / source).resolve()
            inside, exists = target.is_relative_to(root), target.is_file()
        except (OSError, ValueError, RuntimeError) as exc:  # a NUL, a name too long, a loop
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            yield ("files", i, "source"), f"{source!r} is not a path that can be read: {reason}"
            continue
        if not inside:
            yield ("files", i, "source"), f"{source!r} is outside the spec's directory"
        elif not exists:
            yield ("files", i, "source"), f"{source!r} does not exist beside the spec"


def _dotted(loc: Loc) -> str:
    return format_loc(loc[:-1]) if loc else ""


def findings(data: dict[str, Any], base: Path) -> list[Finding]:
    """Every cross-section problem of a spec's raw data."""
    return [
        *check_nodes(data),
        *check_primary(data),
        *check_users(data),
        *check_placement(data),
        *check_mpi(data),
        *check_slurm(data),
        *check_sources(data, base),
    ]
