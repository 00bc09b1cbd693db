"""A node's network files, rendered from the spec for the backend the node runs.

The wired interface gets the node's static address and never a default route; Wi-Fi, when
the spec has it, gets its address and the default route by DHCP. Because the wired link
never carries a default route, the default goes through Wi-Fi whatever order the links come
up in (the metrics only make the order explicit).

- NetworkManager (Raspberry Pi OS bookworm): two keyfiles of picl's own, mode 0600 (NM
  ignores keyfiles anyone but root can read). Syntax: nm-settings-keyfile(5), GLib key files.
- dhcpcd + wpa_supplicant (bullseye): picl's block (changes.BEGIN/END) at the end of
  /etc/dhcpcd.conf (dhcpcd.conf(5)), and a wpa_supplicant.conf of picl's own
  (wpa_supplicant.conf(5)).

Pure: spec and node in, file contents out. Writing them, reloading and confirm-or-revert
happen on the node, elsewhere. Contents holding the Wi-Fi key are `sensitive`: they never
show in a repr, and a plan shows them as `(sensitive)`.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from picl.deploy.changes import BEGIN, END, with_block
from picl.errors import PiclError
from picl.spec import Cluster, Node, Wifi

Backend = Literal["networkmanager", "dhcpcd"]

KEYFILE_DIR = "/etc/NetworkManager/system-connections"
WIRED_KEYFILE = f"{KEYFILE_DIR}/picl-wired.nmconnection"
WIFI_KEYFILE = f"{KEYFILE_DIR}/picl-wifi.nmconnection"
DHCPCD_CONF = "/etc/dhcpcd.conf"
WPA_SUPPLICANT_CONF = "/etc/wpa_supplicant/wpa_supplicant.conf"

# The files picl writes whole for each backend: one the spec no longer wants is picl's to remove.
OWNED_FILES: dict[Backend, tuple[str, ...]] = {
    "networkmanager": (WIRED_KEYFILE, WIFI_KEYFILE),
    "dhcpcd": (WPA_SUPPLICANT_CONF,),
}

# NetworkManager's own defaults for ethernet and Wi-Fi, written out so the routes are explicit.
WIRED_METRIC = 100
WIFI_METRIC = 600
# Above the profiles the image ships ("Wired connection 1", the imager's "preconfigured").
AUTOCONNECT_PRIORITY = 100

# What the backend fact looks at: units enabled at boot, and files that exist.
BACKEND_UNITS = ("NetworkManager.service", "dhcpcd.service")
BACKEND_FILES = (
    "/usr/sbin/NetworkManager",
    "/usr/sbin/dhcpcd",
    "/sbin/dhcpcd",
    DHCPCD_CONF,
    "/usr/sbin/wpa_supplicant",
    "/sbin/wpa_supplicant",
)

MARKER = "# picl: managed by picl"
# dhcpcd.conf(5): options after `interface`, `ssid` or `profile` are for that one alone.
_STANZA = re.compile(r"^\s*(interface|ssid|profile)\s+(\S+)")
# A foreign line of the wired interface's stanza, switched off: picl's block replaces it.
REPLACED = "# picl replaced: "
_HEX_KEY = re.compile(r"^[0-9A-Fa-f]{64}$")
# Stable profile UUIDs: the same spec renders the same files, so a converged plan is empty.
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "picl.cluster")


class NetworkError(PiclError):
    """The network of a node cannot be rendered as the spec asks; the message says why."""


@dataclass(frozen=True, repr=False)
class Rendered:
    """A file's desired content, where it goes and its mode.

    `sensitive` content holds a secret: it is never in repr() or str(); `shown` is what a plan
    may print.
    """

    path: str
    content: str
    mode: str = "0644"
    sensitive: bool = False

    @property
    def shown(self) -> str:
        return "(sensitive)" if self.sensitive else self.content

    def __repr__(self) -> str:
        content = "(sensitive)" if self.sensitive else repr(self.content)
        return f"Rendered(path={self.path!r}, mode={self.mode!r}, content={content})"

    __str__ = __repr__


def detect_backend(
    node: str, units: Collection[str], files: Collection[str], wifi: bool = False
) -> Backend:
    """The node's network backend, from the BACKEND_UNITS enabled and the BACKEND_FILES present.

    NetworkManager on Raspberry Pi OS bookworm, dhcpcd (+ wpa_supplicant for Wi-Fi) on
    bullseye; anything else, or both at once, is refused with what was found.
    """
    has_nm = "NetworkManager.service" in units and "/usr/sbin/NetworkManager" in files
    has_dhcpcd = "dhcpcd.service" in units and DHCPCD_CONF in files
    if has_nm and has_dhcpcd:
        raise NetworkError(
            f"{node}: both NetworkManager and dhcpcd are enabled and would fight over the "
            "interfaces; disable one (systemctl disable --now dhcpcd) and plan again"
        )
    if has_nm:
        return "networkmanager"
    if has_dhcpcd:
        if wifi and not {"/usr/sbin/wpa_supplicant", "/sbin/wpa_supplicant"} & set(files):
            raise NetworkError(
                f"{node}: dhcpcd runs but wpa_supplicant is not installed, and the spec has "
                "[network.wifi]: install wpasupplicant"
            )
        return "dhcpcd"
    found = ", ".join(sorted(set(units) | set(files))) or "neither"
    raise NetworkError(
        f"{node}: no supported network backend (found: {found}); picl configures "
        "NetworkManager (Raspberry Pi OS bookworm) or dhcpcd + wpa_supplicant (bullseye)"
    )


def _address(cluster: Cluster, node: Node) -> str:
    return f"{node.address}/{cluster.network.subnet.prefixlen}"


def _passphrase(cluster: Cluster, node: Node, wifi: Wifi) -> str:
    """The Wi-Fi key from secrets, checked as WPA wants it; errors never show the value."""
    value = cluster.secret(wifi.psk)
    name = wifi.psk.secret
    if value is None:
        raise NetworkError(
            f"{node.name}: the Wi-Fi key (secret {name!r}) is not loaded; "
            "picl needs secrets.toml to render the Wi-Fi configuration"
        )
    passphrase = 8 <= len(value) <= 63 and all(" " <= c <= "~" for c in value)
    if not (passphrase or _HEX_KEY.fullmatch(value)):
        raise NetworkError(
            f"secret {name!r} is not a WPA key: it must be 8 to 63 printable ASCII "
            "characters, or 64 hex digits (the value is not shown)"
        )
    return value


def _ssid_bytes(wifi: Wifi) -> bytes:
    ssid = wifi.ssid.encode("utf-8")
    if len(ssid) > 32:
        raise NetworkError(f"network.wifi.ssid {wifi.ssid!r} is {len(ssid)} bytes; at most 32")
    return ssid


def _keyfile_string(value: str) -> str:
    """A GLib key file string: backslash and control characters escaped, leading spaces `\\s`."""
    body = value.lstrip(" ")
    escapes = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
    return "\\s" * (len(value) - len(body)) + "".join(escapes.get(c, c) for c in body)


def _keyfile_ssid(ssid: bytes) -> str:
    """The SSID as NetworkManager writes it: text if printable ASCII (';' escaped), else bytes."""
    if all(0x20 <= b <= 0x7E for b in ssid):
        return _keyfile_string(ssid.decode("ascii").replace(";", "\\;"))
    return "".join(f"{b};" for b in ssid)


def _keyfile(origin: str, sections: dict[str, dict[str, str]]) -> str:
    out = [f"{MARKER} ({origin}); edit the spec, not this file"]
    for section, keys in sections.items():
        out += ["", f"[{section}]", *(f"{key}={value}" for key, value in keys.items())]
    return "\n".join(out) + "\n"


def _profile_uuid(cluster: Cluster, node: Node, role: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{cluster.cluster.name}/{node.name}/{role}"))


def wired_keyfile(cluster: Cluster, node: Node) -> Rendered:
    """NetworkManager profile for the wired interface: static address, never the default route."""
    interface = cluster.network.interface
    content = _keyfile("cluster.toml [network]", {
        "connection": {
            "id": "picl-wired",
            "uuid": _profile_uuid(cluster, node, "wired"),
            "type": "ethernet",
            "interface-name": interface,
            "autoconnect-priority": str(AUTOCONNECT_PRIORITY),
        },
        "ipv4": {
            "method": "manual",
            "address1": _address(cluster, node),
            "never-default": "true",
            "route-metric": str(WIRED_METRIC),
        },
        # Link-local only: no router advertisement can add a default route here.
        "ipv6": {"method": "link-local", "never-default": "true"},
    })  # fmt: skip
    return Rendered(WIRED_KEYFILE, content, mode="0600")


def wifi_keyfile(cluster: Cluster, node: Node) -> Rendered | None:
    """NetworkManager profile for Wi-Fi (DHCP, the default route), or None without Wi-Fi."""
    wifi = cluster.network.wifi
    if wifi is None:
        return None
    content = _keyfile("cluster.toml [network.wifi]", {
        "connection": {
            "id": "picl-wifi",
            "uuid": _profile_uuid(cluster, node, "wifi"),
            "type": "wifi",
            "autoconnect-priority": str(AUTOCONNECT_PRIORITY),
        },
        "wifi": {"mode": "infrastructure", "ssid": _keyfile_ssid(_ssid_bytes(wifi))},
        "wifi-security": {
            "key-mgmt": "wpa-psk",
            "psk": _keyfile_string(_passphrase(cluster, node, wifi)),
        },
        "ipv4": {"method": "auto", "route-metric": str(WIFI_METRIC)},
        "ipv6": {"method": "auto", "route-metric": str(WIFI_METRIC)},
    })  # fmt: skip
    return Rendered(WIFI_KEYFILE, content, mode="0600", sensitive=True)


def keyfiles(cluster: Cluster, node: Node) -> list[Rendered]:
    """Every NetworkManager keyfile the spec wants on the node (see OWNED_FILES for removal)."""
    wifi = wifi_keyfile(cluster, node)
    return [wired_keyfile(cluster, node), *([wifi] if wifi else [])]


def dhcpcd_block(cluster: Cluster, node: Node) -> list[str]:
    """The lines of picl's block in /etc/dhcpcd.conf: the wired interface static, no gateway."""
    return [
        "# The wired compute network: a static address and never a default route. Every other",
        "# interface (Wi-Fi) takes its address and the default route by DHCP.",
        "# Lines after 'interface' belong to that interface: this block stays last.",
        f"interface {cluster.network.interface}",
        f"static ip_address={_address(cluster, node)}",
        "nogateway",
    ]


def dhcpcd_conf(cluster: Cluster, node: Node, current: str | None) -> Rendered:
    """/etc/dhcpcd.conf with picl's block set (appended the first time); other lines kept.

    A foreign stanza for the wired interface (a static address set by hand, as bullseye users
    do) would merge with picl's block, gateway and all: its lines are switched off, commented
    with REPLACED, so the plan shows them and a revert brings them back.
    """
    lines = (current or "").splitlines()
    interface = cluster.network.interface
    inside = ours = False
    for number, line in enumerate(lines):
        inside = (inside or line == BEGIN) and line != END
        stanza = _STANZA.match(line)
        if inside or stanza:  # picl's block, or any stanza, ends the foreign one
            ours = bool(stanza and not inside and stanza.group(1) == "interface"
                        and stanza.group(2) == interface)
        if ours and line.strip() and not line.lstrip().startswith("#"):
            lines[number] = REPLACED + line
    text = "\n".join(lines) + "\n" if lines else current
    return Rendered(DHCPCD_CONF, with_block(text, dhcpcd_block(cluster, node)))


def wpa_psk(ssid: bytes, key: str) -> str:
    """The 256-bit PSK wpa_supplicant derives from a passphrase (as wpa_passphrase prints it)."""
    if _HEX_KEY.fullmatch(key):
        return key.lower()
    return hashlib.pbkdf2_hmac("sha1", key.encode("ascii"), ssid, 4096, 32).hex()


def wpa_supplicant_conf(cluster: Cluster, node: Node) -> Rendered | None:
    """wpa_supplicant.conf for bullseye's dhcpcd hook, or None without Wi-Fi.

    The key is written as the derived PSK (what wpa_passphrase does): no quoting to get
    wrong, and the passphrase itself never lands on the node.
    """
    wifi = cluster.network.wifi
    if wifi is None:
        return None
    ssid = _ssid_bytes(wifi)
    text = ssid.decode("utf-8")
    # Quoted when plain ASCII; otherwise the hex form wpa_supplicant.conf also accepts.
    quoted = all(0x20 <= b <= 0x7E for b in ssid) and '"' not in text
    content = "\n".join([
        f"{MARKER} (cluster.toml [network.wifi]); edit the spec, not this file",
        "ctrl_interface=DIR=/var/run/wpa_supplicant GROUP=netdev",
        f"country={wifi.country}",
        "",
        "network={",
        f'\tssid="{text}"' if quoted else f"\tssid={ssid.hex()}",
        "\tkey_mgmt=WPA-PSK",
        f"\tpsk={wpa_psk(ssid, _passphrase(cluster, node, wifi))}",
        "}",
    ]) + "\n"  # fmt: skip
    return Rendered(WPA_SUPPLICANT_CONF, content, mode="0600", sensitive=True)


def network_files(
    cluster: Cluster, node: Node, backend: Backend, dhcpcd_current: str | None = None
) -> list[Rendered]:
    """Every file the node's network needs for its backend (dhcpcd needs the current conf)."""
    if backend == "networkmanager":
        return keyfiles(cluster, node)
    wpa = wpa_supplicant_conf(cluster, node)
    return [dhcpcd_conf(cluster, node, dhcpcd_current), *([wpa] if wpa else [])]
