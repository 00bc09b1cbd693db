"""What a lab is now: per node, running and answering SSH (`lab status`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from picl.errors import PiclError
from picl.lab import mirror, network, node, ssh, vm
from picl.lab.blueprint import BRIDGE, Blueprint, check_name


@dataclass(frozen=True)
class NodeStatus:
    name: str
    address: str
    namespace: str
    running: bool
    ssh: bool | None  # None: not checked
    release: str
    arch: str
    image: str
    machine: str
    """"container", or a VM on "kvm" or "tcg" (software emulation)."""


@dataclass(frozen=True)
class LabStatus:
    name: str
    cluster: str
    up: bool
    namespace: str
    address: str
    subnet: str
    proxy: str | None
    """The apt proxy's URL while it runs."""
    nodes: list[NodeStatus]

    def to_json(self) -> dict[str, object]:
        return {
            "lab": self.name,
            "cluster": self.cluster,
            "up": self.up,
            "network": {
                "namespace": self.namespace,
                "bridge": BRIDGE,
                "address": f"{self.address}/{self.subnet.split('/')[1]}" if self.address else None,
                "subnet": self.subnet,
            },
            "apt_proxy": self.proxy,
            "nodes": [asdict(n) for n in self.nodes],
        }


def status(name: str, check_ssh: bool = True) -> LabStatus | None:
    """The lab's state, per node: running, address, answering SSH; None if there is no such lab."""
    lab = Blueprint.load(check_name(name))
    if lab is None:
        return None
    found = node.processes(name)
    running = [n for n in lab.nodes if node.is_running(n, found)]
    answering = ssh.probe(lab, running) if check_ssh and network.exists(lab.namespace) else {}
    nodes = [
        NodeStatus(
            name=n.name,
            address=n.address,
            namespace=n.namespace,
            running=n in running,
            ssh=answering.get(n.name, False) if check_ssh else None,
            release=n.release,
            arch=n.arch,
            image=n.image,
            machine=vm.machine(n),
        )
        for n in lab.nodes
    ]
    return LabStatus(
        name=lab.name,
        cluster=lab.cluster,
        up=bool(running) and network.exists(lab.namespace),
        namespace=lab.namespace,
        address=lab.address,
        subnet=lab.subnet,
        proxy=mirror.proxy_url(lab) if mirror.proxies(lab.name) else None,
        nodes=nodes,
    )


def find(name: str) -> Blueprint:
    """The blueprint of a lab that is up, or a PiclError saying how to bring it up."""
    lab = Blueprint.load(check_name(name))
    if lab is None or not network.exists(lab.namespace):
        raise PiclError(f"no lab {name!r} is up on this machine: `picl lab up` first")
    return lab



def console_log(name: str, node_name: str) -> Path:
    """Where a node's console is kept: what it printed at boot, the serial line of a VM."""
    lab = Blueprint.load(check_name(name))
    if lab is None:
        raise PiclError(f"no lab {name!r} on this machine")
    return lab.node(node_name).dir / "console.log"
