"""What a lab is made of: its name, network, nodes and where each lives on the host.

A blueprint is derived from the spec once, at `up`, and saved beside the lab's state, so that
`down`, `kill` and `status` work from what was built even when the spec has changed since.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

from picl.errors import PiclError

STATE = Path("/var/lib/picl/lab")
LOCKS = Path("/var/lib/picl/locks")
NETNS = Path("/run/netns")
BRIDGE = "picl0"
# The optional uplink: like a Wi-Fi access point with client isolation, the nodes reach its
# router (the lab network) but not each other. What the wired network must not be confused with.
UPLINK_BRIDGE = "picl1"
UPLINK_INTERFACE = "wlan0"
UPLINK_SUBNET = ipaddress.IPv4Network("192.168.50.0/24")
# A lab name becomes part of namespace, machine and directory names.
LAB_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,22}[a-z0-9])?$")
IFNAMSIZ = 15
# nspawn's machine name must be a valid hostname of at most 64 characters.
MACHINE_NAME_MAX = 64


class SpecNode(Protocol):
    name: str
    address: ipaddress.IPv4Address


@dataclass(frozen=True)
class Flash:
    """What is on a node's card: a Raspberry Pi OS release for an architecture, as an image."""

    release: str
    arch: str
    image: str
    """The image id (see picl.lab.image) the node's overlay stands on."""
    vm: bool = False
    """Booted as a virtual machine with Debian's kernel (picl.lab.vm), not as a container."""


def check_name(name: str) -> str:
    """A lab name, or a PiclError saying what a lab name may be."""
    if not LAB_NAME.match(name):
        raise PiclError(
            f"lab name {name!r}: use 1-24 lower-case letters, digits and '-', "
            "not starting or ending with '-'"
        )
    return name


@dataclass(frozen=True)
class NodeBlueprint:
    lab: str
    name: str
    address: str
    index: int
    release: str
    arch: str
    image: str
    vm: bool = False

    @property
    def flash(self) -> Flash:
        return Flash(self.release, self.arch, self.image, self.vm)

    @property
    def dir(self) -> Path:
        return STATE / self.lab / "nodes" / self.name

    @property
    def upper(self) -> Path:
        return self.dir / "upper"

    @property
    def work(self) -> Path:
        return self.dir / "work"

    @property
    def root(self) -> Path:
        """The overlay mount the container boots from: the node's disk."""
        return self.dir / "root"

    @property
    def namespace(self) -> str:
        return f"picl-{self.lab}-{self.name}"

    @property
    def machine(self) -> str:
        """nspawn's machine name: unique on the host, so two labs never share its /run paths."""
        return f"picl-{self.lab}-{self.name}"

    @property
    def veth(self) -> str:
        """The bridge's end of the node's cable, in the lab's network namespace."""
        name = f"ve-{self.name}"
        return name if len(name) <= IFNAMSIZ else f"ve-n{self.index}"

    @property
    def uplink_veth(self) -> str:
        """The uplink bridge's end of the node's second cable."""
        name = f"vu-{self.name}"
        return name if len(name) <= IFNAMSIZ else f"vu-n{self.index}"

    @property
    def uplink_address(self) -> str:
        return str(UPLINK_SUBNET.network_address + 10 + self.index)


@dataclass(frozen=True)
class Blueprint:
    name: str
    cluster: str
    subnet: str
    interface: str
    address: str
    """The lab network's own address on the bridge: where `lab exec` and `--lab` run from."""
    first_user: str
    """The account the imager made on every node's card (uid 1000, sudo)."""
    nodes: tuple[NodeBlueprint, ...]
    uplink: bool = False
    """Whether the nodes have a second, non-cluster interface (see UPLINK_SUBNET)."""
    spec: str = ""
    """The spec file it was built from (absolute): finds the lab when that spec is broken."""
    primary: str = ""
    """The spec's primary node, as built."""

    @property
    def dir(self) -> Path:
        return STATE / self.name

    @property
    def namespace(self) -> str:
        return f"picl-{self.name}-net"

    @property
    def prefixlen(self) -> int:
        return ipaddress.IPv4Network(self.subnet).prefixlen

    @property
    def manifest(self) -> Path:
        return self.dir / "lab.json"

    def node(self, name: str) -> NodeBlueprint:
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise PiclError(f"lab {self.name!r} has no node {name!r} (its nodes: {known})")

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data["nodes"] = [asdict(n) for n in self.nodes]
        tmp = self.manifest.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.manifest)

    @classmethod
    def load(cls, name: str) -> Blueprint | None:
        """The blueprint a lab was built from, or None when no lab of that name has state."""
        path = STATE / name / "lab.json"
        try:
            data = json.loads(path.read_text())
            # A lab from before releases: one image for all (so that `down` can remove it).
            legacy = {"release": "bookworm", "arch": "amd64", "image": data.pop("image", "")}
            data.setdefault("first_user", "")
            nodes = tuple(
                NodeBlueprint(**_known(NodeBlueprint, {**legacy, **n})) for n in data.pop("nodes")
            )
            return cls(nodes=nodes, **_known(cls, data))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError) as exc:
            raise PiclError(
                f"{path}: unreadable lab state ({exc}); `picl lab down --all`"
            ) from None


def _known(kind: type, data: dict[str, Any]) -> dict[str, Any]:
    """The fields `kind` has: a lab saved by another version of picl may have more."""
    names = {f.name for f in fields(kind)}
    return {k: v for k, v in data.items() if k in names}


def lab_address(
    subnet: ipaddress.IPv4Network, taken: set[ipaddress.IPv4Address]
) -> ipaddress.IPv4Address:
    """The highest host address of the subnet that no node uses: the lab network's own."""
    if subnet.num_addresses >= 4:
        first, last = int(subnet.network_address) + 1, int(subnet.broadcast_address) - 1
    else:  # /31 and /32 have no network or broadcast address to skip
        first, last = int(subnet.network_address), int(subnet.broadcast_address)
    for value in range(last, first - 1, -1):
        address = ipaddress.IPv4Address(value)
        if address not in taken:
            return address
    raise PiclError(
        f"subnet {subnet}: every address is a node's; the lab needs one more for its own network "
        "(use a larger subnet)"
    )


def design(
    name: str,
    cluster_name: str,
    subnet: ipaddress.IPv4Network,
    interface: str,
    nodes: list[SpecNode],
    flashed: Mapping[str, Flash],
    first_user: str,
    uplink: bool = False,
    spec: str = "",
    primary: str = "",
) -> Blueprint:
    """Lab `name` for a spec's network and nodes, each with what is on its card (`flashed`, by
    node name); a PiclError if the lab cannot build them."""
    check_name(name)
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", interface) or interface in (".", ".."):
        raise PiclError(f"network.interface {interface!r}: not a Linux interface name")
    if interface == "lo":
        raise PiclError("network.interface 'lo': the lab cannot give a node's address to loopback")
    problems = []
    for node in nodes:
        if node.address not in subnet:
            problems.append(f"node {node.name}: address {node.address} is not in {subnet}")
        machine = f"picl-{name}-{node.name}"
        if len(machine) > MACHINE_NAME_MAX:
            problems.append(
                f"node {node.name}: name too long for the lab (its container would be "
                f"{machine!r}, over {MACHINE_NAME_MAX} characters)"
            )
    if problems:
        raise PiclError("; ".join(problems))
    own = lab_address(subnet, {n.address for n in nodes})
    return Blueprint(
        name=name,
        cluster=cluster_name,
        subnet=str(subnet),
        interface=interface,
        address=str(own),
        first_user=first_user,
        uplink=uplink,
        nodes=tuple(
            NodeBlueprint(
                lab=name,
                name=n.name,
                address=str(n.address),
                index=i,
                release=flashed[n.name].release,
                arch=flashed[n.name].arch,
                image=flashed[n.name].image,
                vm=flashed[n.name].vm,
            )
            for i, n in enumerate(nodes)
        ),
        spec=spec,
        primary=primary,
    )


def readable_labs() -> list[Blueprint]:
    """The labs on this machine whose blueprint this picl reads (one that another version of
    picl saved may not be: it is left alone)."""
    found = []
    for name in lab_names():
        try:
            lab = Blueprint.load(name)
        except PiclError:
            continue
        if lab:
            found.append(lab)
    return found


def built_from(spec: Path) -> list[str]:
    """The labs on this machine built from this spec file."""
    return [lab.name for lab in readable_labs() if lab.spec == str(spec.resolve())]


def lab_names() -> list[str]:
    """Every lab with state on this machine."""
    if not STATE.is_dir():
        return []
    return sorted(p.name for p in STATE.iterdir() if p.is_dir() and LAB_NAME.match(p.name))
