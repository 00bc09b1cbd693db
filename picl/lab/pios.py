"""What a freshly flashed Raspberry Pi OS Lite is, per release: the lab's node images.

The package lists (picl/lab/pios/RELEASE.txt) are pi-gen's stages 0-2 less what Debian does not
have (the Raspberry Pi archive's own packages, firmware, kernels): see their headers. The rest is
what tells the releases apart where picl looks: where the boot files are, which network stack
is in charge, how apt's sources are written.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from pathlib import Path

from picl.errors import PiclError

LISTS = Path(__file__).with_name("pios")
DEFAULT = "bookworm"
ARCHES = ("amd64", "arm64")
LEFT_OUT = "left out"
# What the imager's first user is given on Raspberry Pi OS (pi-gen, stage2/01-sys-tweaks):
# these groups, and passwordless sudo through /etc/sudoers.d/010_pi-nopasswd.
FIRST_USER_GROUPS = (
    "adm", "dialout", "cdrom", "audio", "users", "sudo", "video", "games", "plugdev", "input",
    "gpio", "spi", "i2c", "netdev", "render",
)  # fmt: skip
# Groups a Pi has for its hardware that no Debian package creates (pi-gen adds them).
HARDWARE_GROUPS = ("input", "spi", "i2c", "gpio")


@dataclass(frozen=True)
class Release:
    name: str
    boot: str
    """Where config.txt and cmdline.txt are."""
    network: str
    """What configures the wired link: "NetworkManager" or "dhcpcd"."""
    components: tuple[str, ...]
    deb822: bool
    """apt's sources as /etc/apt/sources.list.d/debian.sources (else one-line sources.list)."""
    security: bool = True
    """Whether its security suite is in the sources: bullseye's support ended (LTS, August
    2026) and mirrors no longer serve every file its index names."""


RELEASES = {
    r.name: r
    for r in (
        Release(
            "bookworm",
            "/boot/firmware",
            "NetworkManager",
            ("main", "contrib", "non-free", "non-free-firmware"),
            False,
        ),
        Release(
            "trixie",
            "/boot/firmware",
            "NetworkManager",
            ("main", "contrib", "non-free", "non-free-firmware"),
            True,
        ),
        Release("bullseye", "/boot", "dhcpcd", ("main", "contrib", "non-free"), False, False),
    )
}


@dataclass(frozen=True)
class Group:
    """One of pi-gen's package files: installed by one `apt-get install`."""

    source: str
    recommends: bool
    packages: tuple[str, ...]


def release(name: str) -> Release:
    """The release called `name`, or a PiclError naming those there are."""
    try:
        return RELEASES[name]
    except KeyError:
        raise PiclError(
            f"release {name!r}: the lab has Raspberry Pi OS Lite {', '.join(RELEASES)}"
        ) from None


def native_arch() -> str:
    """This machine's architecture, as Debian names it."""
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def networkmanager_cannot_run(name: str, arch: str) -> bool:
    """Whether a node of release `name` on `arch` has NetworkManager but cannot run it.

    Under qemu-user NetworkManager aborts when the generic netlink socket it opens at start is
    refused (qemu-user emulates route, uevent and audit netlink only), so an emulated bookworm
    or trixie node cannot set its own wired address: the lab sets it, and stands in for nmcli.
    """
    return release(name).network == "NetworkManager" and arch != native_arch()


def check_arch(arch: str) -> str:
    """`arch` if the lab can run it (this machine's own, or emulated), else a PiclError."""
    if arch not in ARCHES:
        raise PiclError(f"architecture {arch!r}: the lab runs {' and '.join(ARCHES)} nodes")
    return arch


def parse(text: str, arch: str, where: str = "package list") -> tuple[list[Group], list[str]]:
    """(what to install, in order; what was left out) from a package list for `arch`."""
    groups: list[Group] = []
    left: list[str] = []
    section: str | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if match := re.fullmatch(r"\[([^]]+)\]", line):
            section = match[1]
            if section != LEFT_OUT:
                groups.append(Group(section, not section.endswith("-nr"), ()))
            continue
        match = re.fullmatch(r"([a-z0-9][a-z0-9+.-]*)(?:\s+\[([a-z0-9 ]+)\])?", line)
        if section is None or not match:
            raise PiclError(f"{where}:{number}: {raw.strip()!r}: expected [SECTION] or NAME [ARCH]")
        if section == LEFT_OUT:
            left.append(match[1])
        elif match[2] is None or arch in match[2].split():
            last = groups[-1]
            groups[-1] = Group(last.source, last.recommends, (*last.packages, match[1]))
    return [g for g in groups if g.packages], left


def lists_of(name: str) -> Path:
    return LISTS / f"{release(name).name}.txt"


def packages(name: str, arch: str) -> list[Group]:
    """What pi-gen installs for release `name`, less what Debian does not have, for `arch`."""
    path = lists_of(name)
    return parse(path.read_text(), arch, str(path))[0]


def left_out(name: str) -> list[str]:
    """pi-gen's packages for release `name` that lab images do not have."""
    path = lists_of(name)
    return parse(path.read_text(), native_arch(), str(path))[1]
