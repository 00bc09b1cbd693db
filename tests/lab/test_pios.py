"""Lab images as data: pi-gen's package lists, what a card gets, the mirror, the apt proxy's rules."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from picl.errors import PiclError
from picl.lab import Cards, answer_limit, aptproxy, image, imager, mirror, pios
from picl.lab.blueprint import Blueprint, NodeBlueprint

REPO = Path(__file__).resolve().parents[2]
DEBIAN = mirror.Mirror("http://deb.debian.org/debian", "http://deb.debian.org/debian-security")


def installed(release: str, arch: str = "amd64") -> set[str]:
    return {p for g in pios.packages(release, arch) for p in g.packages}


# -- pi-gen's lists --------------------------------------------------------------------------------

LIST = """\
# a comment
[stage1/03-install-packages/00-packages]
systemd-timesyncd

[stage2/01-sys-tweaks/00-packages]
ssh  # with a comment
python3-rpi.gpio [arm64]
modemmanager-

[stage2/01-sys-tweaks/00-packages-nr]
cifs-utils

[stage2/empty/00-packages]

[left out]
raspi-config  # the Raspberry Pi archive's
"""


def test_a_list_is_groups_in_order_with_recommends_as_pi_gen_installs_them() -> None:
    groups, left = pios.parse(LIST, "amd64")
    assert [(g.source, g.recommends, g.packages) for g in groups] == [
        ("stage1/03-install-packages/00-packages", True, ("systemd-timesyncd",)),
        ("stage2/01-sys-tweaks/00-packages", True, ("ssh", "modemmanager-")),
        ("stage2/01-sys-tweaks/00-packages-nr", False, ("cifs-utils",)),
    ]
    assert left == ["raspi-config"]


def test_a_package_debian_builds_for_one_architecture_is_only_on_that_one() -> None:
    groups, _ = pios.parse(LIST, "arm64")
    assert groups[1].packages == ("ssh", "python3-rpi.gpio", "modemmanager-")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ssh\n", r"list:1: 'ssh': expected \[SECTION\]"),
        ("[s]\nSSH\n", r"list:2: 'SSH'"),
        ("[s]\nssh [arm64\n", r"list:2: 'ssh \[arm64'"),
        ("[s]\nssh; rm -rf /\n", r"list:2: 'ssh; rm -rf /'"),
    ],
)
def test_a_broken_list_says_where(text: str, message: str) -> None:
    with pytest.raises(PiclError, match=message):
        pios.parse(text, "amd64", "list")


@pytest.mark.parametrize("release", list(pios.RELEASES))
@pytest.mark.parametrize("arch", pios.ARCHES)
def test_every_release_is_lite_without_what_picl_installs(release: str, arch: str) -> None:
    have = installed(release, arch)
    assert {"ssh", "sudo", "systemd-timesyncd", "wpasupplicant", "network-manager"} <= have
    assert not {"chrony", "nfs-kernel-server", "git"} & have
    assert not set(pios.left_out(release)) & have
    # Nothing of the Raspberry Pi archive, no firmware, no kernel.
    assert not [p for p in have if p.startswith(("raspi", "rpi", "firmware-", "linux-image"))]


def test_what_tells_the_releases_apart() -> None:
    assert "dhcpcd5" in installed("bullseye") and "dhcpcd5" not in installed("bookworm")
    assert "nfs-common" in installed("bookworm") and "nfs-common" not in installed("trixie")
    assert "cloud-init" in installed("trixie")
    assert "modemmanager-" in installed("trixie")  # pi-gen keeps it out on trixie
    assert "python3-rpi.gpio" in installed("bullseye", "arm64")
    assert "python3-rpi.gpio" not in installed("bullseye", "amd64")
    assert [pios.release(r).boot for r in ("bookworm", "trixie", "bullseye")] == [
        "/boot/firmware",
        "/boot/firmware",
        "/boot",
    ]
    assert pios.release("bullseye").network == "dhcpcd"
    assert pios.release("bookworm").network == pios.release("trixie").network == "NetworkManager"


def test_docs_name_everything_left_out() -> None:
    docs = (REPO / "docs/lab.md").read_text()
    missing = {p for r in pios.RELEASES for p in pios.left_out(r) if f"`{p}`" not in docs}
    assert missing == set()


def test_the_image_is_keyed_by_release_arch_mirror_and_list() -> None:
    ids = {
        image.image_id(release, arch, DEBIAN) for release in pios.RELEASES for arch in pios.ARCHES
    }
    assert len(ids) == len(pios.RELEASES) * len(pios.ARCHES)
    assert image.image_id("bookworm", "amd64", DEBIAN) == image.image_id("bookworm", "amd64", DEBIAN)
    other = mirror.Mirror("http://ftp.de.debian.org/debian")
    assert image.image_id("bookworm", "amd64", other) != image.image_id("bookworm", "amd64", DEBIAN)


@pytest.mark.parametrize(
    ("name", "message"),
    [("buster", "release 'buster': the lab has Raspberry Pi OS Lite bookworm, trixie, bullseye")],
)
def test_an_unknown_release_names_those_there_are(name: str, message: str) -> None:
    with pytest.raises(PiclError, match=message):
        pios.release(name)


# -- what `lab up --os/--arch` asks for ------------------------------------------------------------

NODES = ["node0", "node1", "node2"]


def built(*cards: tuple[str, str, str]) -> Blueprint:
    nodes = tuple(
        NodeBlueprint("a", name, f"10.0.0.{i}", i, release, arch, "img")
        for i, (name, release, arch) in enumerate(cards)
    )
    return Blueprint("a", "a", "10.0.0.0/24", "eth0", "10.0.0.254", "pi", nodes)


@pytest.mark.parametrize(
    ("os_options", "arch_options", "was", "expected"),
    [
        ((), (), None, {n: ("bookworm", "amd64") for n in NODES}),
        (("trixie",), (), None, {n: ("trixie", "amd64") for n in NODES}),
        (
            ("node1=trixie", "node2=bullseye"),
            ("node0=arm64",),
            None,
            {
                "node0": ("bookworm", "arm64"),
                "node1": ("trixie", "amd64"),
                "node2": ("bullseye", "amd64"),
            },
        ),
        # A node's own setting wins over the one for all, whatever the order.
        (("node0=bullseye", "trixie"), (), None, {
            "node0": ("bullseye", "amd64"), "node1": ("trixie", "amd64"),
            "node2": ("trixie", "amd64"),
        }),
        # What is not asked for stays as it was made.
        ((), (), built(("node0", "trixie", "arm64")), {
            "node0": ("trixie", "arm64"), "node1": ("bookworm", "amd64"),
            "node2": ("bookworm", "amd64"),
        }),
        (("node0=bookworm",), (), built(("node0", "trixie", "arm64")), {
            "node0": ("bookworm", "arm64"), "node1": ("bookworm", "amd64"),
            "node2": ("bookworm", "amd64"),
        }),
    ],
)  # fmt: skip
def test_cards_for_each_node(
    os_options: tuple[str, ...],
    arch_options: tuple[str, ...],
    was: Blueprint | None,
    expected: dict[str, tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pios, "native_arch", lambda: "amd64")
    assert Cards.parse(os_options, arch_options).choose(NODES, was) == expected


@pytest.mark.parametrize(
    ("os_options", "arch_options", "message"),
    [
        (("stretch",), (), "release 'stretch'"),
        (("node1=",), (), "--os 'node1=': expected VALUE or NODE=VALUE"),
        ((), ("node0=riscv64",), "architecture 'riscv64': the lab runs amd64 and arm64"),
        (("node7=trixie",), (), r"no node node7 in the spec \(its nodes: node0, node1, node2\)"),
        ((), ("nodeX=arm64",), "no node nodeX"),
    ],
)
def test_cards_that_cannot_be(
    os_options: tuple[str, ...], arch_options: tuple[str, ...], message: str
) -> None:
    with pytest.raises(PiclError, match=message):
        Cards.parse(os_options, arch_options).choose(NODES, None)


# -- the imager's first user -----------------------------------------------------------------------


@dataclass
class User:
    name: str
    uid: int
    rename_from: str | None = None


@pytest.mark.parametrize(
    ("users", "expected"),
    [
        ([User("root", 0), User("federico", 1000, "picocluster")], "picocluster"),
        ([User("ann", 1000)], "ann"),  # typed into the imager: the account is there already
        ([User("ann", 1001)], "user"),
        ([], "user"),
    ],
)
def test_the_first_user_is_the_one_the_spec_expects(users: list[User], expected: str) -> None:
    assert imager.first_user(users) == expected  # type: ignore[arg-type]


# -- the mirror ------------------------------------------------------------------------------------

ONE_LINE = """\
# deb http://commented.example/debian bookworm main
deb [arch=amd64 signed-by=/k.gpg] http://deb.debian.org/debian bookworm main
deb-src http://src.example/debian bookworm main
deb http://deb.debian.org/debian-security bookworm-security main
"""
DEB822 = """\
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Enabled: no

Types: deb deb-src
# a comment
URIs: https://mirror.example/debian/
Suites: bookworm
Components: main
"""


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"sources.list": ONE_LINE}, ["http://deb.debian.org/debian", "http://deb.debian.org/debian-security"]),
        ({"sources.list.d/debian.sources": DEB822}, ["https://mirror.example/debian/"]),
        ({"sources.list.d/x.list.disabled-by-farm": ONE_LINE}, []),
        ({}, []),
    ],
)
def test_apts_sources_are_read_as_apt_reads_them(
    tmp_path: Path, files: dict[str, str], expected: list[str]
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert mirror.sources(tmp_path) == expected


@pytest.mark.parametrize(
    ("uris", "override", "expected"),
    [
        (
            ["https://packages.cloud.example/apt", "http://deb.debian.org/debian/", "http://deb.debian.org/debian-security"],
            None,
            mirror.Mirror("http://deb.debian.org/debian", "http://deb.debian.org/debian-security"),
        ),
        (["https://mirror.example/debian"], None, mirror.Mirror("https://mirror.example/debian")),
        (["http://deb.debian.org/debian"], "http://local/debian/", mirror.Mirror("http://local/debian")),
    ],
)
def test_the_debian_mirror_among_the_sources(
    uris: list[str], override: str | None, expected: mirror.Mirror
) -> None:
    assert mirror.debian(uris, override) == expected


@pytest.mark.parametrize(
    ("uris", "override", "message"),
    [
        (["http://archive.ubuntu.com/ubuntu"], None, "no Debian mirror .* set PICL_LAB_MIRROR"),
        (["file:///srv/debian"], None, "no Debian mirror"),
        ([], "ftp://x/debian", "PICL_LAB_MIRROR='ftp://x/debian': not an http"),
    ],
)
def test_no_debian_mirror_says_what_to_do(
    uris: list[str], override: str | None, message: str
) -> None:
    with pytest.raises(PiclError, match=message):
        mirror.debian(uris, override)


def test_nodes_ask_over_http_what_this_machine_fetches_over_https() -> None:
    secure = mirror.Mirror("https://Mirror.example/debian")
    assert secure.for_nodes() == {"http://mirror.example/debian": "https://Mirror.example/debian"}
    assert secure.node_archive == "http://mirror.example/debian"


# -- what the apt proxy forwards -------------------------------------------------------------------

MIRRORS = {
    "http://deb.debian.org/debian": "http://deb.debian.org/debian",
    "http://deb.debian.org/debian-security": "https://deb.debian.org/debian-security",
}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://deb.debian.org/debian/dists/bookworm/InRelease", "http://deb.debian.org/debian/dists/bookworm/InRelease"),
        ("http://DEB.debian.org:80/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", "http://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"),
        ("http://deb.debian.org/debian-security/dists/x", "https://deb.debian.org/debian-security/dists/x"),
        # apt escapes + (and the mirror reads it back).
        ("http://deb.debian.org/debian/pool/main/g/git/git_2.39.5-0%2bdeb12u3_amd64.deb", "http://deb.debian.org/debian/pool/main/g/git/git_2.39.5-0%2bdeb12u3_amd64.deb"),
        # Anything else is refused: other hosts, ports, paths, schemes, tricks.
        ("http://example.com/debian/dists/x", None),
        ("http://deb.debian.org/debianx/dists", None),
        ("http://deb.debian.org/debian", None),
        ("http://deb.debian.org/", None),
        ("http://deb.debian.org:8080/debian/dists/x", None),
        ("https://deb.debian.org/debian/dists/x", None),
        ("http://deb.debian.org/debian/../../etc/passwd", None),
        ("http://deb.debian.org/debian/%2e%2e/secret", None),
        ("http://deb.debian.org/debian%2f..%2f..%2fsecret", None),
        ("http://deb.debian.org/%64ebian/dists/x", None),  # not how apt asks: refused
        ("http://deb.debian.org/debian/dists/%5c..%5csecret", None),
        ("http://deb.debian.org/debian/dists/x?redirect=http://evil", None),
        ("http://user:pw@deb.debian.org/debian/dists/x", None),
        ("http://deb.debian.org.evil.example/debian/dists/x", None),
        ("http://evil.example/http://deb.debian.org/debian/x", None),
        ("/debian/dists/x", None),  # not a proxy request
        ("deb.debian.org:443", None),  # CONNECT's target
    ],
)
def test_the_proxy_forwards_only_the_mirrors_urls(url: str, expected: str | None) -> None:
    assert aptproxy.upstream_url(url, MIRRORS) == expected


@pytest.mark.parametrize(
    ("url", "cached"),
    [
        ("http://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", "deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"),
        ("http://deb.debian.org/debian/dists/bookworm/main/binary-amd64/Packages.xz", None),
        ("http://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3.dsc", None),
    ],
)
def test_only_package_files_are_cached(url: str, cached: str | None) -> None:
    found = aptproxy.cache_path(Path("/c"), url)
    assert found == (Path("/c") / cached if cached else None)


@pytest.mark.parametrize(
    ("release", "path", "expected"),
    [
        ("bookworm", "etc/apt/sources.list", [
            "deb http://deb.debian.org/debian bookworm main contrib non-free non-free-firmware",
            "deb http://deb.debian.org/debian bookworm-updates main contrib non-free non-free-firmware",
            "deb http://deb.debian.org/debian-security bookworm-security main contrib non-free non-free-firmware",
        ]),
        # bullseye: past its security support; the mirror no longer serves all its files.
        ("bullseye", "etc/apt/sources.list", [
            "deb http://deb.debian.org/debian bullseye main contrib non-free",
            "deb http://deb.debian.org/debian bullseye-updates main contrib non-free",
        ]),
        ("trixie", "etc/apt/sources.list.d/debian.sources", [
            "Types: deb", "URIs: http://deb.debian.org/debian/", "Suites: trixie trixie-updates",
            "Components: main contrib non-free non-free-firmware",
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg", "",
            "Types: deb", "URIs: http://deb.debian.org/debian-security/", "Suites: trixie-security",
            "Components: main contrib non-free non-free-firmware",
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg",
        ]),
    ],
)  # fmt: skip
def test_apt_sources_as_raspberry_pi_os_writes_them(
    tmp_path: Path, release: str, path: str, expected: list[str]
) -> None:
    (tmp_path / "etc/apt/sources.list.d").mkdir(parents=True)
    image.write_sources(tmp_path, pios.release(release), DEBIAN)
    assert sorted((tmp_path / path).read_text().splitlines()) == sorted(expected)


@pytest.mark.parametrize(("arches", "seconds"), [
    (["amd64"], 63),
    (["amd64"] * 3, 69),
    # An emulated node answers several times later (docs/lab.md): a minute more each.
    (["arm64"], 123),
    (["arm64", "amd64", "amd64"], 129),
    (["arm64"] * 2, 186),
])
def test_an_emulated_node_is_given_longer_to_answer(
    arches: list[str], seconds: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pios, "native_arch", lambda: "amd64")
    assert answer_limit(arches) == seconds
