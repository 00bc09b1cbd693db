"""The network on lab nodes, under confirm-or-revert: real NetworkManager (bookworm) and real
dhcpcd (bullseye, NetworkManager installed and unused, as Raspberry Pi OS ships it).

The lab gives each node its wired address as a board set up by hand has it: a profile of its
own ("Wired connection 1"), or an `interface eth0` stanza in dhcpcd.conf. A correct change
hands the interface to picl and is confirmed; one that cuts the node off from picl is undone
by the node itself. Every test ends with a reboot of the node, which must come back and answer
SSH.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from picl.lab import Cards
from tests.conftest import running_lab, session_lab_name
from tests.deploy.risky import CONFIRM_TIMEOUT, Risky

pytestmark = [pytest.mark.lab, pytest.mark.releases("bullseye")]

KEYFILES = "/etc/NetworkManager/system-connections"


@pytest.fixture(scope="module")
def risky(lab_host: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Risky]:
    with running_lab(session_lab_name("network")) as lab:
        yield Risky(lab, tmp_path_factory.mktemp("network"))


def active(risky: Risky, node: str) -> str:
    """The profile NetworkManager runs on the wired interface."""
    return risky.lab.ssh(node, "nmcli -g GENERAL.CONNECTION device show eth0").stdout.strip()


def test_correct_change_is_confirmed_and_survives_a_reboot(risky: Risky) -> None:
    lab = risky.lab
    assert active(risky, "node1") == "Wired connection 1"
    spec = risky.spec()
    plan = risky.picl(spec, "plan", "--node", "node1")
    assert "+ network picl-wired.nmconnection" in plan.stdout
    assert "+address1=10.1.10.241/24" in plan.stdout
    assert "content: (sensitive) -> (sensitive)" in plan.stdout  # the Wi-Fi profile
    result = risky.apply(spec, "node1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "node1: converged" in result.stdout
    assert active(risky, "node1") == "picl-wired"
    modes = lab.ssh("node1", f"stat -c '%a %U' {KEYFILES}/picl-*.nmconnection").stdout.split("\n")
    assert modes[:2] == ["600 root", "600 root"]
    # NetworkManager's own reading of picl's files.
    fields = "ipv4.addresses,ipv4.never-default,ipv6.method"
    assert lab.ssh("node1", f"nmcli -g {fields} connection show picl-wired").stdout.split() == [
        "10.1.10.241/24", "yes", "link-local"]
    assert lab.ssh("node1", "nmcli -g 802-11-wireless.ssid,802-11-wireless-security.key-mgmt "
                            "connection show picl-wifi").stdout.split() == ["ato-2020", "wpa-psk"]
    assert lab.ssh("node1", "ip route show default").stdout == ""  # never through the wire
    risky.reboot("node1")
    assert active(risky, "node1") == "picl-wired"
    assert "inet 10.1.10.241/24" in lab.ssh("node1", "ip -4 addr show eth0").stdout
    document = json.loads(risky.picl(spec, "plan", "--json", "--node", "node1").stdout)
    assert document["nodes"][0]["changes"] == []


def test_change_that_cuts_the_node_off_reverts_by_itself(risky: Risky) -> None:
    """A /29 for a /24 (a typo): the node keeps its address but loses its route to picl."""
    lab = risky.lab
    keyfile = f"{KEYFILES}/picl-wired.nmconnection"
    before = lab.ssh("node2", f"cat {keyfile} 2>/dev/null || echo absent").stdout
    was_active = active(risky, "node2")
    wrong = risky.spec(subnet="10.1.10.240/29", nodes=("node1", "node2")).read_text().replace(
        'primary = "node0"', 'primary = "node1"')
    spec = risky.spec()
    spec.write_text(wrong)
    result = risky.apply(spec, "node2")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "node2: ROLLED BACK:" in result.stdout
    assert f"not confirmed within {CONFIRM_TIMEOUT}s of the change" in result.stdout
    # Back at its old address, on what it ran before.
    assert "inet 10.1.10.242/24" in lab.ssh("node2", "ip -4 addr show eth0").stdout
    assert active(risky, "node2") == was_active
    assert lab.ssh("node2", f"cat {keyfile} 2>/dev/null || echo absent").stdout == before
    risky.reboot("node2")
    assert active(risky, "node2") == was_active
    assert "inet 10.1.10.242/24" in lab.ssh("node2", "ip -4 addr show eth0").stdout


@pytest.fixture(scope="module")
def bullseye(lab_host: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Risky]:
    with running_lab(session_lab_name("dhcpcd"), cards=Cards.parse(["bullseye"])) as lab:
        yield Risky(lab, tmp_path_factory.mktemp("dhcpcd"))


def wired(risky: Risky, node: str) -> list[str]:
    """The addresses on the wired interface, as ADDRESS/PREFIX."""
    shown = json.loads(risky.lab.ssh(node, "ip -j -4 addr show dev eth0").stdout)
    return [f"{a['local']}/{a['prefixlen']}" for link in shown for a in link["addr_info"]]


def running(risky: Risky, node: str) -> list[str]:
    """Which of dhcpcd and NetworkManager run on the node."""
    shown = risky.lab.ssh(node, "systemctl is-active dhcpcd NetworkManager", check=False).stdout
    return shown.split()


def test_dhcpcd_correct_change_is_confirmed_and_survives_a_reboot(bullseye: Risky) -> None:
    lab = bullseye.lab
    assert running(bullseye, "node1") == ["active", "inactive"]
    spec = bullseye.spec()
    plan = bullseye.picl(spec, "plan", "--node", "node1")
    assert "~ network dhcpcd.conf" in plan.stdout
    # The stanza the card had by hand is switched off in the plan, picl's block added.
    assert "+# picl replaced: interface eth0" in plan.stdout
    assert "+nogateway" in plan.stdout
    assert "+ network wpa_supplicant.conf" in plan.stdout
    result = bullseye.apply(spec, "node1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "node1: converged" in result.stdout
    # dhcpcd's own reading of the file: the address static, no gateway, NetworkManager idle.
    assert wired(bullseye, "node1") == ["10.1.10.241/24"]
    assert lab.ssh("node1", "ip route show default").stdout == ""
    assert running(bullseye, "node1") == ["active", "inactive"]
    assert lab.ssh("node1", "stat -c '%a %U' /etc/wpa_supplicant/wpa_supplicant.conf"
                   ).stdout.strip() == "600 root"
    bullseye.reboot("node1")
    assert wired(bullseye, "node1") == ["10.1.10.241/24"]
    assert running(bullseye, "node1") == ["active", "inactive"]
    document = json.loads(bullseye.picl(spec, "plan", "--json", "--node", "node1").stdout)
    assert document["nodes"][0]["changes"] == []


def test_dhcpcd_change_that_cuts_the_node_off_reverts_by_itself(bullseye: Risky) -> None:
    """A /29 for a /24 (a typo): dhcpcd moves the node off the subnet picl reaches it on."""
    lab = bullseye.lab
    before = lab.ssh("node2", "cat /etc/dhcpcd.conf").stdout
    wrong = bullseye.spec(subnet="10.1.10.240/29", nodes=("node1", "node2")).read_text()
    spec = bullseye.spec()
    spec.write_text(wrong.replace('primary = "node0"', 'primary = "node1"'))
    result = bullseye.apply(spec, "node2")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "node2: ROLLED BACK:" in result.stdout
    assert f"not confirmed within {CONFIRM_TIMEOUT}s of the change" in result.stdout
    # Back at its old address, from the file as it was.
    assert lab.ssh("node2", "cat /etc/dhcpcd.conf").stdout == before
    assert wired(bullseye, "node2") == ["10.1.10.242/24"]
    bullseye.reboot("node2")
    assert wired(bullseye, "node2") == ["10.1.10.242/24"]
    assert running(bullseye, "node2") == ["active", "inactive"]
