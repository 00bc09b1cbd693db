"""Network files as data: NetworkManager keyfiles, dhcpcd.conf and wpa_supplicant.conf as their
manuals describe them, the default route through Wi-Fi only, and the Wi-Fi key never shown."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from picl.deploy.network_files import (
    AUTOCONNECT_PRIORITY,
    DHCPCD_CONF,
    WIFI_KEYFILE,
    WIFI_METRIC,
    WIRED_KEYFILE,
    WIRED_METRIC,
    WPA_SUPPLICANT_CONF,
    NetworkError,
    Rendered,
    detect_backend,
    dhcpcd_conf,
    keyfiles,
    network_files,
    wifi_keyfile,
    wired_keyfile,
    wpa_psk,
    wpa_supplicant_conf,
)
from tests.deploy.clusters import PSK, past_the_spec, small_cluster

# NetworkManager's command-line client reads and writes keyfiles without a daemon (>= 1.40):
# this machine's if it has one, else a lab node's (they run NetworkManager, as boards do).
NMCLI = os.environ.get("PICL_NMCLI") or shutil.which("nmcli")
on_nmcli = (lambda test: test) if NMCLI else pytest.mark.lab
Nmcli = Callable[[list[str], str], subprocess.CompletedProcess[str]]


@pytest.fixture
def nmcli(request: pytest.FixtureRequest) -> Nmcli:
    """Run nmcli with these arguments and stdin, where there is one."""
    if NMCLI:
        return lambda args, text: subprocess.run([NMCLI, *args], input=text, capture_output=True,
                                                 text=True, timeout=30)
    lab = request.getfixturevalue("lab")
    return lambda args, text: lab.ssh("node0", shlex.join(["nmcli", *args]), input=text,
                                      check=False, timeout=30)

# /etc/dhcpcd.conf as Raspberry Pi OS bullseye ships it (abridged), examples commented out.
DHCPCD_STOCK = """\
# A sample configuration for dhcpcd.
# See dhcpcd.conf(5) for details.
hostname
clientid
persistent
option rapid_commit
option domain_name_servers, domain_name, domain_search, host_name
require dhcp_server_identifier
slaac private

# Example static IP configuration:
#interface eth0
#static ip_address=192.168.0.10/24
#static routers=192.168.0.1"""


def keyfile(text: str) -> configparser.ConfigParser:
    """A keyfile read back as the .ini file it is (duplicate sections or keys are errors)."""
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


@pytest.fixture
def cluster(tmp_path: Path):
    return small_cluster(tmp_path)


def test_wired_keyfile(cluster) -> None:
    rendered = wired_keyfile(cluster, cluster.node("node1"))
    assert (rendered.path, rendered.mode, rendered.sensitive) == (WIRED_KEYFILE, "0600", False)
    parsed = keyfile(rendered.content)
    assert parsed.sections() == ["connection", "ipv4", "ipv6"]
    assert dict(parsed["connection"]) == {
        "id": "picl-wired",
        "uuid": parsed["connection"]["uuid"],
        "type": "ethernet",
        "interface-name": "eth0",
        "autoconnect-priority": str(AUTOCONNECT_PRIORITY),
    }
    assert dict(parsed["ipv4"]) == {
        "method": "manual",
        "address1": "10.1.10.241/24",  # address/plen, and no gateway after it
        "never-default": "true",
        "route-metric": str(WIRED_METRIC),
    }
    assert dict(parsed["ipv6"]) == {"method": "link-local", "never-default": "true"}
    assert "gateway" not in rendered.content
    assert rendered.content.startswith(
        "# picl: managed by picl (cluster.toml [network]); edit the spec, not this file\n"
    )


def test_wifi_keyfile(cluster) -> None:
    rendered = wifi_keyfile(cluster, cluster.node("node1"))
    assert rendered is not None
    assert (rendered.path, rendered.mode, rendered.sensitive) == (WIFI_KEYFILE, "0600", True)
    parsed = keyfile(rendered.content)
    assert parsed.sections() == ["connection", "wifi", "wifi-security", "ipv4", "ipv6"]
    assert parsed["connection"]["type"] == "wifi"
    assert "interface-name" not in parsed["connection"]  # whichever Wi-Fi device the board has
    assert dict(parsed["wifi"]) == {"mode": "infrastructure", "ssid": "ato-2020"}
    assert dict(parsed["wifi-security"]) == {"key-mgmt": "wpa-psk", "psk": PSK}
    for family in ("ipv4", "ipv6"):
        assert dict(parsed[family]) == {"method": "auto", "route-metric": str(WIFI_METRIC)}


def test_the_default_route_can_only_go_through_wifi(cluster) -> None:
    wired, wifi = (keyfile(r.content) for r in keyfiles(cluster, cluster.node("node2")))
    assert wired["ipv4"]["never-default"] == wired["ipv6"]["never-default"] == "true"
    assert "never-default" not in wifi["ipv4"] and "never-default" not in wifi["ipv6"]
    assert WIFI_METRIC > WIRED_METRIC  # NetworkManager's defaults; only Wi-Fi has a default


def test_profiles_are_stable_per_node(cluster, tmp_path: Path) -> None:
    again = small_cluster(tmp_path)
    node1, node2 = cluster.node("node1"), cluster.node("node2")
    assert keyfiles(cluster, node1) == keyfiles(again, node1)
    uuids = {keyfile(r.content)["connection"]["uuid"] for n in (node1, node2)
             for r in keyfiles(cluster, n)}
    assert len(uuids) == 4


def test_no_wifi_no_wifi_files(tmp_path: Path) -> None:
    cluster = small_cluster(tmp_path, ssid=None, psk=None)
    node = cluster.node("node1")
    assert [r.path for r in keyfiles(cluster, node)] == [WIRED_KEYFILE]
    assert wpa_supplicant_conf(cluster, node) is None
    assert [r.path for r in network_files(cluster, node, "dhcpcd", DHCPCD_STOCK)] == [DHCPCD_CONF]
    assert [r.path for r in network_files(cluster, node, "networkmanager")] == [WIRED_KEYFILE]


# SSIDs and keys as NetworkManager 1.42 itself writes them (`nmcli --offline connection add`).
KEYFILE_SSIDS = {
    "plain": ("ato-2020", "ato-2020"),
    "space inside": ("my net", "my net"),
    "space at the end": ("trail ", "trail "),
    "space at the start": (" lead", "\\slead"),
    "semicolon": ("a;b", "a\\\\;b"),
    "backslash": ("a\\b", "a\\\\b"),
    "hash and equals": ("x#y=z", "x#y=z"),
    "not ascii": ("ça", "195;167;97;"),
    "tab": ("a\ttab", "97;9;116;97;98;"),
}


@pytest.mark.parametrize(("ssid", "written"), KEYFILE_SSIDS.values(), ids=KEYFILE_SSIDS.keys())
def test_keyfile_ssids(ssid: str, written: str, tmp_path: Path) -> None:
    cluster = past_the_spec(small_cluster(tmp_path), ssid=ssid)
    rendered = wifi_keyfile(cluster, cluster.node("node1"))
    assert rendered is not None
    assert f"\nssid={written}\n" in rendered.content


@pytest.mark.parametrize(("psk", "written"), [
    (PSK, PSK),
    (" p\\s;k#\"x ", "\\sp\\\\s;k#\"x "),
    ("0123456789abcdef" * 4, "0123456789abcdef" * 4),
])
def test_keyfile_keys(psk: str, written: str, tmp_path: Path) -> None:
    cluster = small_cluster(tmp_path, psk=psk)
    rendered = wifi_keyfile(cluster, cluster.node("node1"))
    assert rendered is not None
    assert f"\npsk={written}\n" in rendered.content


@on_nmcli
@pytest.mark.parametrize(("ssid", "psk"), [
    ("ato-2020", PSK),
    # A control character never passes the spec (tests/spec): only the renderer meets one.
    *((ssid, " p\\s;k#\"x ") for ssid, _ in KEYFILE_SSIDS.values() if ssid.isprintable()),
])
def test_networkmanager_reads_the_keyfiles_as_written(ssid: str, psk: str, tmp_path: Path,
                                                      nmcli: Nmcli) -> None:
    """nmcli --offline parses a keyfile from stdin, checks it and writes it back normalised:
    every key picl wrote must come back with the same value (unknown keys would be dropped)."""
    cluster = small_cluster(tmp_path, ssid=ssid, psk=psk)
    for rendered in keyfiles(cluster, cluster.node("node1")):
        ours = keyfile(rendered.content)
        run = nmcli(["--offline", "connection", "modify", "connection.id",
                     ours["connection"]["id"]], rendered.content)
        assert run.returncode == 0, run.stderr
        theirs = keyfile(run.stdout)
        for section in ours.sections():
            assert dict(ours[section]).items() <= dict(theirs[section]).items(), section


def test_dhcpcd_block_appended_to_the_stock_file(cluster) -> None:
    rendered = dhcpcd_conf(cluster, cluster.node("node1"), DHCPCD_STOCK)
    assert (rendered.path, rendered.mode, rendered.sensitive) == (DHCPCD_CONF, "0644", False)
    assert rendered.content.startswith(DHCPCD_STOCK + "\n")  # every stock line kept
    added = rendered.content[len(DHCPCD_STOCK) + 1 :].splitlines()
    assert added[0].startswith("# BEGIN picl") and added[-1] == "# END picl"
    statements = [line for line in added if line and not line.startswith("#")]
    assert statements == ["interface eth0", "static ip_address=10.1.10.241/24", "nogateway"]
    assert dhcpcd_conf(cluster, cluster.node("node1"), rendered.content) == rendered


def test_dhcpcd_block_replaced_where_it_is(cluster, tmp_path: Path) -> None:
    before = dhcpcd_conf(cluster, cluster.node("node1"), DHCPCD_STOCK).content
    other = small_cluster(tmp_path, interface="end0")
    after = dhcpcd_conf(other, other.node("node1"), before).content
    assert after == before.replace("\ninterface eth0\n", "\ninterface end0\n")


def test_dhcpcd_statements_are_dhcpcd_conf_syntax(cluster) -> None:
    """dhcpcd.conf(5): `interface NAME` starts the interface's options; `static
    ip_address=ADDRESS/CIDR` sets it with no DHCP; `nogateway` installs no default route."""
    text = dhcpcd_conf(cluster, cluster.node("node2"), "").content
    statements = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert re.fullmatch(r"interface [A-Za-z0-9_.-]+", statements[0])
    assert re.fullmatch(r"static ip_address=\d+\.\d+\.\d+\.\d+/\d+", statements[1])
    assert statements[2:] == ["nogateway"]
    assert "routers" not in text


# A static address set by hand (what a bullseye user, and the lab, write), and what picl makes
# of it: the wired interface's stanza switched off, every other line as it was.
HAND_SET = (
    "interface eth0\nstatic ip_address=10.1.10.99/24\n# the old router\nstatic routers=10.1.10.1\n",
    "# picl replaced: interface eth0\n# picl replaced: static ip_address=10.1.10.99/24\n"
    "# the old router\n# picl replaced: static routers=10.1.10.1\n",
)


@pytest.mark.parametrize(("before", "after"), [
    HAND_SET,
    # Indented options, and the stanza ending at the next one.
    ("interface eth0\n  static ip_address=10.1.10.99/24\n\ninterface wlan0\nmetric 400\n",
     "# picl replaced: interface eth0\n# picl replaced:   static ip_address=10.1.10.99/24\n\n"
     "interface wlan0\nmetric 400\n"),
    # An ssid or profile stanza ends it too; what follows them is theirs.
    ("interface eth0\nnogateway\nssid home\nstatic ip_address=192.168.1.5/24\n",
     "# picl replaced: interface eth0\n# picl replaced: nogateway\n"
     "ssid home\nstatic ip_address=192.168.1.5/24\n"),
    ("interface eth0\nprofile static_eth0\nstatic ip_address=10.1.10.9/24\n",
     "# picl replaced: interface eth0\nprofile static_eth0\nstatic ip_address=10.1.10.9/24\n"),
    # Another interface, and one whose name only starts like the wired one, are not ours.
    ("interface wlan1\nmetric 400\ninterface eth0.5\nstatic ip_address=10.5.0.1/24\n", None),
    # Already switched off: nothing more to do.
    (HAND_SET[1], None),
])
def test_a_hand_set_stanza_for_the_wired_interface_is_switched_off(
    cluster, before: str, after: str | None
) -> None:
    current = DHCPCD_STOCK + "\n\n" + before
    content = dhcpcd_conf(cluster, cluster.node("node1"), current).content
    ours = content.index("# BEGIN picl")
    assert content[:ours] == DHCPCD_STOCK + "\n\n" + (after or before)
    assert content[ours:].splitlines()[-4:-1] == [
        "interface eth0", "static ip_address=10.1.10.241/24", "nogateway"]
    # Idempotent: the next plan renders the same file.
    assert dhcpcd_conf(cluster, cluster.node("node1"), content).content == content


def test_a_stanza_after_picls_block_is_switched_off_and_the_block_kept_in_place(cluster) -> None:
    ours = dhcpcd_conf(cluster, cluster.node("node1"), DHCPCD_STOCK).content
    content = dhcpcd_conf(cluster, cluster.node("node1"), ours + HAND_SET[0]).content
    assert content == ours + HAND_SET[1]


def test_wpa_supplicant_conf(cluster) -> None:
    rendered = wpa_supplicant_conf(cluster, cluster.node("node1"))
    assert rendered is not None
    assert (rendered.path, rendered.mode, rendered.sensitive) == (WPA_SUPPLICANT_CONF, "0600", True)
    assert rendered.content.splitlines() == [
        "# picl: managed by picl (cluster.toml [network.wifi]); edit the spec, not this file",
        "ctrl_interface=DIR=/var/run/wpa_supplicant GROUP=netdev",
        "country=US",
        "",
        "network={",
        '\tssid="ato-2020"',
        "\tkey_mgmt=WPA-PSK",
        f"\tpsk={wpa_psk(b'ato-2020', PSK)}",
        "}",
    ]
    assert PSK not in rendered.content  # the derived key only, as wpa_passphrase prints it


@pytest.mark.parametrize(("ssid", "passphrase", "psk"), [
    # IEEE 802.11i-2004, H.4.3: passphrase-to-PSK test vectors.
    (b"IEEE", "password", "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"),
    (b"ThisIsASSID", "ThisIsAPassword", "0dc0d6eb90555ed6419756b9a15ec3e3209b63df707dd508d14581f8982721af"),
    # What `wpa_passphrase ato-2020 'correct horse battery staple'` prints.
    (b"ato-2020", PSK, "503a01b94b0146aa90e94eba550f1b6db8474778a36363cd50ef757ec4518df5"),
    (b"any", "0123456789ABCDEF" * 4, "0123456789abcdef" * 4),  # already a key: as is
])
def test_wpa_psk(ssid: bytes, passphrase: str, psk: str) -> None:
    assert wpa_psk(ssid, passphrase) == psk


@pytest.mark.parametrize(("ssid", "line"), [
    ("my net", '\tssid="my net"'),
    ('say "hi"', "\tssid=7361792022686922"),  # hex: no quote to get wrong
    ("ça", "\tssid=c3a761"),
])
def test_wpa_supplicant_ssids(ssid: str, line: str, tmp_path: Path) -> None:
    cluster = small_cluster(tmp_path, ssid=ssid)
    rendered = wpa_supplicant_conf(cluster, cluster.node("node1"))
    assert rendered is not None
    assert line in rendered.content.splitlines()


@pytest.mark.parametrize("psk", ["short", "x" * 64, "tøøøøøøøøøøø", "line\nbreak!!"])
def test_a_key_wpa_cannot_use_is_refused_without_showing_it(psk: str, tmp_path: Path) -> None:
    cluster = past_the_spec(small_cluster(tmp_path), psk=psk)
    for render in (wifi_keyfile, wpa_supplicant_conf):
        with pytest.raises(NetworkError) as raised:
            render(cluster, cluster.node("node1"))
        assert "secret 'wifi_psk' is not a WPA key" in str(raised.value)
        assert psk not in str(raised.value)


def test_without_secrets_wifi_cannot_be_rendered(tmp_path: Path) -> None:
    cluster = small_cluster(tmp_path, psk=None)
    with pytest.raises(NetworkError, match="node1: the Wi-Fi key \\(secret 'wifi_psk'\\) is not loaded"):
        keyfiles(cluster, cluster.node("node1"))
    assert wired_keyfile(cluster, cluster.node("node1")).content  # the wired side needs none


def test_secrets_never_show(cluster) -> None:
    node = cluster.node("node1")
    files = [*keyfiles(cluster, node), *network_files(cluster, node, "dhcpcd", "")]
    derived = wpa_psk(b"ato-2020", PSK)
    for rendered in files:
        for shown in (repr(rendered), str(rendered), repr(files), rendered.shown if rendered.sensitive else ""):
            assert PSK not in shown and derived not in shown
    assert [r.path for r in files if r.sensitive] == [WIFI_KEYFILE, WPA_SUPPLICANT_CONF]
    assert {r.shown for r in files if r.sensitive} == {"(sensitive)"}


def test_plain_files_show_their_content() -> None:
    rendered = Rendered("/etc/x", "a\n")
    assert rendered.shown == "a\n"
    assert repr(rendered) == "Rendered(path='/etc/x', mode='0644', content='a\\n')"


BOOKWORM = ({"NetworkManager.service"}, {"/usr/sbin/NetworkManager", "/usr/sbin/wpa_supplicant"})
BULLSEYE = ({"dhcpcd.service"}, {"/usr/sbin/dhcpcd", "/etc/dhcpcd.conf", "/sbin/wpa_supplicant",
                                 "/usr/sbin/NetworkManager"})  # installed, not enabled


@pytest.mark.parametrize(("units", "files", "backend"), [
    (*BOOKWORM, "networkmanager"),
    (*BULLSEYE, "dhcpcd"),
])
def test_backend_detected(units: set[str], files: set[str], backend: str) -> None:
    assert detect_backend("node1", units, files, wifi=True) == backend


@pytest.mark.parametrize(("units", "files", "message"), [
    ({"NetworkManager.service", "dhcpcd.service"}, BULLSEYE[1],
     "node1: both NetworkManager and dhcpcd are enabled"),
    (set(), set(), "node1: no supported network backend (found: neither)"),
    ({"systemd-networkd.service"}, set(), "node1: no supported network backend (found: systemd-networkd"),
    ({"dhcpcd.service"}, {"/etc/dhcpcd.conf"}, "node1: dhcpcd runs but wpa_supplicant is not installed"),
])
def test_backend_refused(units: set[str], files: set[str], message: str) -> None:
    with pytest.raises(NetworkError) as raised:
        detect_backend("node1", units, files, wifi=True)
    assert str(raised.value).startswith(message)


def test_dhcpcd_without_wifi_needs_no_wpa_supplicant() -> None:
    assert detect_backend("node1", {"dhcpcd.service"}, {"/etc/dhcpcd.conf"}) == "dhcpcd"


def test_keyfile_ssid_length_is_in_bytes(tmp_path: Path) -> None:
    cluster = small_cluster(tmp_path, ssid="é" * 17)  # 17 characters, 34 bytes
    with pytest.raises(NetworkError, match="34 bytes; at most 32"):
        wifi_keyfile(cluster, cluster.node("node1"))

