"""Stock Raspberry Pi OS Lite nodes: a mixed lab (bookworm, trixie, bullseye), an arm64 node, and
the apt proxy every node gets its packages through."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from picl.lab import Cards, mirror
from tests.conftest import Lab, running_lab, session_lab_name

pytestmark = [pytest.mark.lab, pytest.mark.releases("trixie", "bullseye")]

RELEASES = {"node0": "bookworm", "node1": "trixie", "node2": "bullseye"}
FIRST_USER = "picocluster"  # cluster.toml: federico's rename_from


@pytest.fixture(scope="module")
def mixed(lab_host: None) -> Iterator[Lab]:
    """The example cluster on three releases, as a cluster reflashed one board at a time."""
    cards = Cards.parse([f"{n}={r}" for n, r in RELEASES.items()])
    with running_lab(session_lab_name("mixed"), cards=cards) as running:
        yield running


def test_status_shows_each_nodes_release_and_arch(mixed: Lab) -> None:
    result = mixed.picl("lab", "status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert {n["name"]: (n["release"], n["arch"]) for n in status["nodes"]} == {
        n: (r, "amd64") for n, r in RELEASES.items()
    }
    assert status["apt_proxy"] == f"http://{mixed.blueprint.address}:3142/"
    shown = mixed.picl("lab", "status").stdout
    for name, release in RELEASES.items():
        assert any(name in line and f"{release} amd64" in line for line in shown.splitlines())


def test_each_node_runs_its_release(mixed: Lab) -> None:
    for name, release in RELEASES.items():
        codename = mixed.ssh(name, ". /etc/os-release && echo $VERSION_CODENAME").stdout.strip()
        assert codename == release


def test_the_first_user_is_the_imagers(mixed: Lab) -> None:
    for name in RELEASES:
        entry = mixed.ssh(name, f"getent passwd {FIRST_USER}").stdout.strip().split(":")
        assert entry[2:4] == ["1000", "1000"] and entry[6] == "/bin/bash"
        groups = mixed.ssh(name, f"id -nG {FIRST_USER}").stdout.split()
        assert {"sudo", "gpio", "video", "netdev"} <= set(groups)
        # Passwordless sudo, as Raspberry Pi OS gives its first user.
        assert mixed.ssh(name, f"su - {FIRST_USER} -c 'sudo -n id -u'").stdout.strip() == "0"
        assert mixed.ssh(name, "getent passwd pi", check=False).returncode != 0


def test_boot_files_are_where_each_release_has_them(mixed: Lab) -> None:
    for name in ("node0", "node1"):
        mixed.ssh(name, "test -s /boot/firmware/config.txt && test -s /boot/firmware/cmdline.txt")
    mixed.ssh("node2", "test -s /boot/config.txt && test -s /boot/cmdline.txt")
    assert mixed.ssh("node2", "test -e /boot/firmware", check=False).returncode != 0


def test_time_is_timesyncd_and_nothing_picl_installs_is_there(mixed: Lab) -> None:
    for name in RELEASES:
        mixed.ssh(name, "dpkg-query -W -f='${Status}' systemd-timesyncd | grep -q 'ok installed'")
        mixed.ssh(name, "systemctl is-enabled systemd-timesyncd")
        for absent in ("chrony", "nfs-kernel-server", "git"):
            shown = mixed.ssh(name, f"dpkg-query -W -f='${{Status}}' {absent}", check=False)
            assert "ok installed" not in shown.stdout, f"{name}: {absent} is installed"


def test_the_wired_address_comes_from_the_releases_network_stack(mixed: Lab) -> None:
    interface = mixed.cluster.network.interface
    for name in RELEASES:
        shown = mixed.ssh(name, f"ip -j -4 addr show dev {interface}").stdout
        addresses = [a["local"] for link in json.loads(shown) for a in link["addr_info"]]
        assert addresses == [mixed.address(name)]
        assert mixed.ssh(name, "ip -4 route show default").stdout.strip() == ""
    for name in ("node0", "node1"):
        active = mixed.ssh(name, "nmcli -t -f NAME,DEVICE connection show --active").stdout
        assert f"Wired connection 1:{interface}" in active.splitlines()
    # bullseye: dhcpcd holds it, NetworkManager is installed but not running.
    mixed.ssh("node2", "systemctl is-active dhcpcd")
    assert mixed.ssh("node2", "grep -A1 '^interface eth0' /etc/dhcpcd.conf").stdout.split() == [
        "interface", "eth0", "static", f"ip_address={mixed.address('node2')}/24"
    ]  # fmt: skip
    mixed.ssh("node2", "dpkg-query -W network-manager")
    assert mixed.ssh("node2", "systemctl is-active NetworkManager", check=False).returncode != 0


def test_a_package_installs_through_the_labs_apt_proxy(mixed: Lab) -> None:
    for name in ("node1", "node2"):
        # The first install after flashing builds man-db's whole index, as on a board: minutes.
        mixed.ssh(name, "apt-get -q update && DEBIAN_FRONTEND=noninteractive apt-get -q -y install hello",
                  timeout=900)
        assert mixed.ssh(name, "hello").stdout.strip() == "Hello, world!"
    log = (mixed.blueprint.dir / "aptproxy.log").read_text()
    assert "/pool/main/h/hello/hello_" in log


def test_the_proxy_reaches_the_mirror_and_nothing_else(mixed: Lab) -> None:
    proxy = f"http://{mixed.blueprint.address}:3142"
    archive = mirror.configured().node_archive
    ok = mixed.ssh("node0", f"curl -s -o /dev/null -w '%{{http_code}}' -x {proxy} {archive}/dists/bookworm/Release")
    assert ok.stdout == "200"
    for url in ("http://example.com/", f"{archive}/../../etc/passwd", "http://deb.debian.org:8080/debian/"):
        refused = mixed.ssh(
            "node0", f"curl -s --path-as-is -o /dev/null -w '%{{http_code}}' -x {proxy} {url}", check=False
        )
        assert refused.stdout == "403", url
    tunnel = mixed.ssh("node0", f"curl -s -p -x {proxy} https://deb.debian.org/ -o /dev/null", check=False)
    assert tunnel.returncode != 0  # no CONNECT
    # The proxy is in the lab's network only: nothing listens on this machine's.
    listening = subprocess.run(["ss", "-Hltn", "sport = :3142"], capture_output=True, text=True)
    assert listening.stdout.strip() == ""


def test_the_proxy_goes_with_the_lab(lab_host: None, tmp_path: Path) -> None:
    name = session_lab_name("proxy")
    with running_lab(name, spec=_one_node_spec(tmp_path), cards=Cards.parse(["bookworm"])):
        assert list(mirror.proxies(name))  == [name]
    assert mirror.proxies(name) == {}


def _one_node_spec(directory: Path, node: str = "node0") -> Path:
    spec = directory / "one.toml"
    spec.write_text(
        '[cluster]\nname = "one"\nprimary = "node0"\n\n[network]\nsubnet = "10.1.40.0/24"\n'
        f'interface = "eth0"\n\n[[nodes]]\nname = "{node}"\naddress = "10.1.40.10"\n'
    )
    return spec


@pytest.mark.arm64
def test_an_arm64_node(lab_host: None, tmp_path: Path) -> None:
    name = session_lab_name("arm64")
    cards = Cards.parse(["bookworm"], ["node0=arm64"])
    with running_lab(name, spec=_one_node_spec(tmp_path), cards=cards) as arm:
        assert arm.ssh("node0", "uname -m").stdout.strip() == "aarch64"
        assert arm.ssh("node0", "dpkg --print-architecture").stdout.strip() == "arm64"
        state = arm.ssh("node0", "systemctl is-system-running --wait", check=False).stdout.strip()
        failed = arm.ssh("node0", "systemctl --failed --plain --no-legend").stdout
        # Booted, and nothing failed but what fails on every bookworm lab node (docs/lab.md).
        assert state in ("running", "degraded")
        assert [line.split()[0] for line in failed.splitlines()] == ["run-rpc_pipefs.mount"]
        # NetworkManager cannot run under qemu-user: masked, the address set on the cable.
        for unit in ("NetworkManager", "NetworkManager-wait-online"):
            masked = arm.ssh("node0", f"systemctl is-enabled {unit}", check=False).stdout
            assert masked.strip() == "masked", unit
        assert "inet 10.1.40.10/24 " in arm.ssh("node0", "ip -4 addr show dev eth0").stdout
        status = json.loads(arm.picl("lab", "status", "--json").stdout)
        assert [(n["release"], n["arch"]) for n in status["nodes"]] == [("bookworm", "arm64")]
