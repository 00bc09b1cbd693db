"""What the lab builds from a spec, and the errors for what it cannot build: data, no root needed."""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from picl.errors import PiclError
from picl.lab import blueprint, host, lab_of, ssh
from picl.lab.blueprint import Flash, design, lab_address

# Every node of these labs has the same card.
CARDS = defaultdict(lambda: Flash("bookworm", "amd64", "img"))


@dataclass
class Node:
    name: str
    address: ipaddress.IPv4Address
    packages: list[str] = field(default_factory=list)


def nodes(*pairs: tuple[str, str]) -> list[Node]:
    return [Node(name, ipaddress.IPv4Address(address)) for name, address in pairs]


NET = ipaddress.IPv4Network("10.1.10.0/24")
THREE = nodes(("node0", "10.1.10.240"), ("node1", "10.1.10.241"), ("node2", "10.1.10.242"))


def test_names_and_wiring() -> None:
    lab = design("arrakis", "arrakis", NET, "eth0", THREE, CARDS, "pi")
    assert lab.namespace == "picl-arrakis-net"
    assert lab.address == "10.1.10.254"
    assert [n.namespace for n in lab.nodes] == [f"picl-arrakis-node{i}" for i in range(3)]
    assert [n.veth for n in lab.nodes] == ["ve-node0", "ve-node1", "ve-node2"]
    assert str(lab.nodes[0].root) == "/var/lib/picl/lab/arrakis/nodes/node0/root"
    assert [(n.release, n.arch, n.image) for n in lab.nodes] == [("bookworm", "amd64", "img")] * 3
    assert lab.first_user == "pi"


def test_long_node_names_get_short_interface_names() -> None:
    lab = design("a", "a", NET, "eth0", nodes(("a-very-long-node-name", "10.1.10.1")), CARDS, "pi")
    assert lab.nodes[0].veth == "ve-n0"
    assert len(lab.nodes[0].veth) <= 15


@pytest.mark.parametrize(
    ("subnet", "taken", "expected"),
    [
        ("10.1.10.0/24", [], "10.1.10.254"),
        ("10.1.10.0/24", ["10.1.10.254"], "10.1.10.253"),
        ("10.1.10.0/30", ["10.1.10.2"], "10.1.10.1"),
        ("10.1.10.0/31", ["10.1.10.1"], "10.1.10.0"),
    ],
)
def test_the_lab_network_takes_the_highest_free_address(
    subnet: str, taken: list[str], expected: str
) -> None:
    used = {ipaddress.IPv4Address(a) for a in taken}
    assert str(lab_address(ipaddress.IPv4Network(subnet), used)) == expected


@pytest.mark.parametrize(
    ("name", "subnet", "interface", "pairs", "message"),
    [
        ("Arrakis", NET, "eth0", [("n", "10.1.10.1")], "lab name 'Arrakis'"),
        ("-x", NET, "eth0", [("n", "10.1.10.1")], "lab name '-x'"),
        ("a", NET, "an-interface-name", [("n", "10.1.10.1")], "not a Linux interface name"),
        ("a", NET, "lo", [("n", "10.1.10.1")], "loopback"),
        ("a", NET, "eth0", [("n", "10.1.11.1")], "not in 10.1.10.0/24"),
        (
            "a",
            ipaddress.IPv4Network("10.0.0.0/30"),
            "eth0",
            [("n", "10.0.0.1"), ("m", "10.0.0.2")],
            "every address is a node's",
        ),
        ("a", NET, "eth0", [("n" * 63, "10.1.10.1")], "name too long for the lab"),
    ],
)
def test_specs_the_lab_cannot_build(
    name: str, subnet: ipaddress.IPv4Network, interface: str, pairs: list, message: str
) -> None:
    with pytest.raises(PiclError, match=message):
        design(name, "c", subnet, interface, nodes(*pairs), CARDS, "pi")


def test_preflight_says_what_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host.platform, "system", lambda: "Darwin")
    with pytest.raises(PiclError, match="needs Linux"):
        host.preflight()
    monkeypatch.setattr(host.platform, "system", lambda: "Linux")
    monkeypatch.setattr(host.os, "geteuid", lambda: 1000)
    with pytest.raises(PiclError, match="needs root"):
        host.preflight()
    monkeypatch.setattr(host.os, "geteuid", lambda: 0)
    monkeypatch.setattr(host.shutil, "which", lambda tool: None if tool != "ip" else "/bin/ip")
    with pytest.raises(PiclError, match="apt-get install .*debootstrap.*systemd-container"):
        host.preflight()


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A lab `side` built from tmp_path/cluster.toml, its state in tmp_path/state."""
    monkeypatch.setattr(blueprint, "STATE", tmp_path / "state")
    monkeypatch.delenv("PICL_LAB_NAME", raising=False)
    spec = tmp_path / "cluster.toml"
    design("side", "arrakis", NET, "eth0", THREE, CARDS, "pi", spec=str(spec),
           primary="node0").save()
    return spec


# (what cluster.toml holds, --name, $PICL_LAB_NAME, the lab meant or the error's words)
WHICH_LAB = {
    "named": ('[cluster]\nname = "arrakis"\n', "other", None, "other"),
    "from the environment": ('[cluster]\nname = "arrakis"\n', None, "envlab", "envlab"),
    "the spec's cluster": ('[cluster]\nname = "arrakis"\nuid = "broken"\n', None, None,
                           "arrakis"),
    "not TOML: the lab built from it": ('[cluster\nname = "arrakis"\n', None, None, "side"),
    "no cluster name: the lab built from it": ("[cluster]\n", None, None, "side"),
}


@pytest.mark.parametrize(("text", "name", "environ", "meant"), WHICH_LAB.values(),
                         ids=WHICH_LAB.keys())
def test_which_lab_a_command_means(built: Path, monkeypatch: pytest.MonkeyPatch, text: str,
                                   name: str | None, environ: str | None, meant: str) -> None:
    built.write_text(text)
    if environ:
        monkeypatch.setenv("PICL_LAB_NAME", environ)
    assert lab_of(built, name) == meant


def test_a_broken_spec_no_lab_was_built_from_asks_for_a_name(built: Path,
                                                              tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text("[cluster\n")
    with pytest.raises(PiclError) as raised:
        lab_of(other)
    assert raised.value.lines()[0].startswith(f"{other}:1:9: invalid TOML")
    assert "give --name NAME (or PICL_LAB_NAME)" in raised.value.lines()[0]


def test_a_blueprint_of_before_it_recorded_its_spec_still_loads(built: Path) -> None:
    manifest = blueprint.Blueprint.load("side")
    assert manifest is not None and manifest.primary == "node0"
    data = json.loads(manifest.manifest.read_text())
    del data["spec"], data["primary"]
    manifest.manifest.write_text(json.dumps(data))
    assert blueprint.Blueprint.load("side") == replace(manifest, spec="", primary="")


def test_a_blueprint_saved_by_a_later_picl_still_loads(built: Path) -> None:
    manifest = blueprint.Blueprint.load("side")
    assert manifest is not None
    data = json.loads(manifest.manifest.read_text())
    data["later"] = 1
    data["nodes"][0]["colour"] = "blue"
    manifest.manifest.write_text(json.dumps(data))
    assert blueprint.Blueprint.load("side") == manifest


def test_the_guide_lists_every_variable_the_lab_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("PICL_")]:
        monkeypatch.delenv(name)
    lab = design("arrakis", "arrakis", NET, "eth0", THREE, CARDS, "pi")
    set_here = {n for n in ssh.environment(lab) if n.startswith("PICL_")} | {"PATH"}
    guide = (Path(__file__).resolve().parents[2] / "docs" / "lab.md").read_text()
    table = guide.split("| variable | what |")[1].split("\n\n")[0]
    listed = set(re.findall(r"^\| `([A-Z_]+)` \|", table, flags=re.MULTILINE))
    assert listed == set_here


def test_a_lab_that_cannot_be_read_is_left_alone(built: Path, tmp_path: Path) -> None:
    broken = tmp_path / "state" / "other" / "lab.json"
    broken.parent.mkdir(parents=True)
    broken.write_text('{"name": "other"}')
    assert [lab.name for lab in blueprint.readable_labs()] == ["side"]
    assert blueprint.built_from(built) == ["side"]
