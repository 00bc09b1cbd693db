"""The network concern as data: the node's backend and files in, guarded changes out."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from picl.deploy import network
from picl.deploy.network_files import WIFI_KEYFILE, WIRED_KEYFILE, keyfiles
from picl.deploy.view import NodeView
from picl.facts.node import Observed, Stat
from picl.spec import Cluster
from tests.deploy.clusters import PSK, small_cluster
from tests.deploy.conftest import fresh_node, view

ROOT_600 = Stat("root", "root", "0600", 0, 0, "regular file")


def bookworm(name: str = "node1") -> Observed:
    """A Raspberry Pi OS bookworm node: NetworkManager enabled, picl's profiles not there yet."""
    observed = fresh_node(name)
    observed.units = {"NetworkManager.service": ("enabled", "active")}
    observed.existing = {"/usr/sbin/NetworkManager", "/usr/sbin/wpa_supplicant"}
    return observed


def converged(cluster: Cluster, name: str = "node1") -> Observed:
    observed = bookworm(name)
    wired, wifi = keyfiles(cluster, cluster.node(name))
    observed.files[WIRED_KEYFILE] = wired.content.encode()
    observed.digests[WIFI_KEYFILE] = hashlib.sha256(wifi.content.encode()).hexdigest()
    observed.stats.update({WIRED_KEYFILE: ROOT_600, WIFI_KEYFILE: ROOT_600})
    return observed


def changes(cluster: Cluster, observed: Observed, name: str = "node1") -> dict:
    return {c.resource: c for c in network.changes(view(cluster, name, observed))}


@pytest.fixture
def spec(tmp_path: Path) -> Cluster:
    return small_cluster(tmp_path)


def commands(change) -> list[str]:
    return [str(c) for step in change.steps for c in step.arguments.get("commands", [])]


def test_profiles_are_written_600_and_brought_up_under_the_switch(spec: Cluster) -> None:
    found = changes(spec, bookworm())
    wired = found["network picl-wired.nmconnection"]
    wifi = found["network picl-wifi.nmconnection"]
    assert (wired.action, wifi.action) == ("create", "create")
    assert wired.steps[0].arguments["mode"] == wifi.steps[0].arguments["mode"] == "0600"
    assert "+address1=10.1.10.241/24" in wired.diff.splitlines()
    assert wired.guard is wifi.guard is network.GUARDS["networkmanager"]
    # NetworkManager is told once, after the last file: reload, then each profile up.
    up = commands(wifi)
    assert up[0] == "nmcli connection reload"
    assert up[1].startswith("nmcli --wait 30 connection up uuid ")
    assert up[2].startswith("if nmcli -t -f TYPE device | grep -qx wifi; then ")
    assert commands(wired) == []


def test_the_wifi_key_never_shows(spec: Cluster) -> None:
    wifi = changes(spec, bookworm())["network picl-wifi.nmconnection"]
    assert wifi.sensitive and wifi.diff == ""
    assert PSK not in repr(wifi.attributes) + repr([str(c) for c in commands(wifi)])


def test_a_converged_node_has_no_change(spec: Cluster) -> None:
    assert changes(spec, converged(spec)) == {}


def test_a_changed_wifi_key_is_found_by_its_digest(tmp_path: Path) -> None:
    old = small_cluster(tmp_path, psk="an older passphrase")
    observed = converged(old)
    new = small_cluster(tmp_path)
    found = changes(new, observed)
    assert list(found) == ["network picl-wifi.nmconnection"]
    assert found["network picl-wifi.nmconnection"].action == "update"


def test_a_readable_profile_is_an_update_of_its_mode(spec: Cluster) -> None:
    observed = converged(spec)
    observed.stats[WIRED_KEYFILE] = Stat("root", "root", "0644", 0, 0, "regular file")
    (change,) = changes(spec, observed).values()
    assert [(a.name, a.before, a.after) for a in change.attributes] == [("mode", "0644", "0600")]
    assert change.diff == ""


def test_wifi_dropped_from_the_spec_removes_picl_s_profile(spec: Cluster, tmp_path: Path) -> None:
    observed = converged(spec)
    (tmp_path / "wired").mkdir()
    wired_only = small_cluster(tmp_path / "wired", ssid=None)
    found = changes(wired_only, observed)
    assert found["network picl-wifi.nmconnection"].action == "remove"
    assert commands(found["network picl-wifi.nmconnection"])[0] == f"rm -f {WIFI_KEYFILE}"


def test_without_secrets_wifi_is_left_as_it_is(tmp_path: Path) -> None:
    spec = small_cluster(tmp_path, psk=None)
    assert list(changes(spec, bookworm())) == ["network picl-wired.nmconnection"]


@pytest.mark.parametrize(("units", "existing", "error"), [
    ({}, set(), "no supported network backend"),
    ({"NetworkManager.service": ("enabled", "active"), "dhcpcd.service": ("enabled", "active")},
     {"/usr/sbin/NetworkManager", "/etc/dhcpcd.conf"}, "both NetworkManager and dhcpcd"),
    # A unit that is not installed reads as neither enabled nor active.
    ({"NetworkManager.service": ("inactive", "")}, {"/usr/sbin/NetworkManager"},
     "no supported network backend"),
])
def test_an_unknown_backend_blocks_the_network_with_what_was_found(
        spec: Cluster, units: dict, existing: set, error: str) -> None:
    observed = fresh_node()
    observed.units, observed.existing = units, existing
    (change,) = changes(spec, observed).values()
    assert change.resource == "network" and error in change.blocked and change.steps == ()


def test_bullseye_gets_dhcpcd_and_wpa_supplicant(spec: Cluster) -> None:
    observed = fresh_node()
    observed.units = {"dhcpcd.service": ("enabled", "active")}
    observed.existing = {"/usr/sbin/dhcpcd", "/etc/dhcpcd.conf", "/sbin/wpa_supplicant"}
    observed.files["/etc/dhcpcd.conf"] = b"hostname\n"
    found = changes(spec, observed)
    assert list(found) == ["network dhcpcd.conf", "network wpa_supplicant.conf"]
    assert found["network dhcpcd.conf"].diff.splitlines()[-1] == "+# END picl"
    assert found["network wpa_supplicant.conf"].sensitive
    assert commands(found["network wpa_supplicant.conf"]) == ["systemctl restart dhcpcd"]
    assert found["network dhcpcd.conf"].guard == network.GUARDS["dhcpcd"]


def test_the_backend_is_read_from_the_node(spec: Cluster) -> None:
    node: NodeView = view(spec, "node1", bookworm())
    assert network.backend(node) == "networkmanager"
