"""The install's pure parts as data: the primary's platform, wheel tags, the files it writes."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from picl.errors import PiclError
from picl.reconciler.install import (
    anchor_script,
    authorize_script,
    environment,
    known_hosts,
    prepare_script,
    pusher,
    pusher_script,
    unit,
    upstream_known_hosts,
)
from picl.reconciler.paths import Paths
from picl.reconciler.verify import UNSIGNED
from picl.reconciler.wheelhouse import Platform, requirements
from picl.spec import Cluster, load
from tests.reconciler.test_loop import spec

PLATFORMS = [
    ("aarch64 3.11 2.36\n", Platform("aarch64", "3.11", "2.36")),
    ("x86_64 3.13 2.41", Platform("x86_64", "3.13", "2.41")),
    ("armv7l 3.11 2.36", Platform("armv7l", "3.11", "2.36")),
]


@pytest.mark.parametrize(("line", "platform"), PLATFORMS)
def test_platform_parse(line: str, platform: Platform) -> None:
    assert Platform.parse(line) == platform


@pytest.mark.parametrize("line", ["", "aarch64 3.11", "aarch64 3.11 ", "x86_64 3 2.36",
                                  "aarch64 3.11 1.2", "musl 3.11 bionic"])
def test_platform_parse_refuses(line: str) -> None:
    with pytest.raises(PiclError):
        Platform.parse(line)


def test_tags_run_every_manylinux_up_to_the_glibc() -> None:
    tags = Platform("aarch64", "3.11", "2.19").tags()
    assert tags == [
        "manylinux_2_19_aarch64", "manylinux_2_18_aarch64",
        "manylinux_2_17_aarch64", "manylinux2014_aarch64",
        "manylinux_2_16_aarch64", "manylinux_2_15_aarch64", "manylinux_2_14_aarch64",
        "manylinux_2_13_aarch64", "manylinux_2_12_aarch64", "manylinux2010_aarch64",
        "manylinux_2_11_aarch64", "manylinux_2_10_aarch64", "manylinux_2_9_aarch64",
        "manylinux_2_8_aarch64", "manylinux_2_7_aarch64", "manylinux_2_6_aarch64",
        "manylinux_2_5_aarch64", "manylinux1_aarch64",
        "linux_aarch64",
    ]


def test_download_options() -> None:
    options = Platform("aarch64", "3.11", "2.36").download_options()
    assert options[:10] == ["--only-binary=:all:", "--implementation", "cp", "--python-version",
                            "3.11", "--abi", "cp311", "--abi", "abi3", "--abi"]
    assert options.count("--platform") == len(Platform("aarch64", "3.11", "2.36").tags())


def test_requirements_leave_out_extras_and_the_strip(tmp_path: Path) -> None:
    wheel = tmp_path / "picl-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("picl-0.1.0.dist-info/METADATA", (
            "Metadata-Version: 2.4\nName: picl\nVersion: 0.1.0\n"
            "Requires-Dist: pyinfra<3.11,>=3.9\n"
            "Requires-Dist: blinkt<0.2,>=0.1.2\n"
            "Requires-Dist: watchdog<8,>=4\n"
            "Requires-Dist: pytest>=8; extra == \"test\"\n"
            "Provides-Extra: test\n\nREADME\n"))
    assert requirements(wheel) == ["pyinfra<3.11,>=3.9", "watchdog<8,>=4"]


@pytest.fixture
def cluster(tmp_path: Path):  # noqa: ANN201
    (tmp_path / "cluster.toml").write_text(spec())
    return load(tmp_path / "cluster.toml")


def test_known_hosts_pin_every_name(cluster) -> None:  # noqa: ANN001
    text = known_hosts(cluster, {
        "node0": ["ssh-ed25519 AAAAnode0 root@node0"],
        "node1": ["ssh-ed25519 AAAAnode1 root@node1", "ssh-rsa AAAArsa1"],
    })
    assert text == (
        "10.1.10.240,node0,node0.cluster ssh-ed25519 AAAAnode0\n"
        "10.1.10.241,node1,node1.cluster ssh-ed25519 AAAAnode1\n"
        "10.1.10.241,node1,node1.cluster ssh-rsa AAAArsa1\n"
    )


def test_environment_and_unit(cluster) -> None:  # noqa: ANN001
    paths = Paths()
    assert environment(paths, cluster, "terminal") == (
        "PICL_SSH_KEY=/etc/picl/agent_ed25519\n"
        "PICL_KNOWN_HOSTS=/etc/picl/known_hosts\n"
        "PICL_SSH_USER=root\n"
        "PICL_AGENT_BRANCH=main\n"
        "PICL_LED_BACKEND=terminal\n"
        "PICL_CLUSTER=arrakis\n"
    )
    text = unit(paths)
    assert "ExecStart=/opt/picl/venv/bin/picl agent run\n" in text
    assert "EnvironmentFile=/etc/picl/agent.env\n" in text
    assert "Restart=always\n" in text
    assert "WantedBy=multi-user.target\n" in text
    assert "network-online" not in text.split("# No network-online")[0]


def test_authorize_adds_the_key_once(tmp_path: Path) -> None:
    home = tmp_path / "root"
    key = "ssh-ed25519 AAAAagent picl-agent@arrakis"
    script = authorize_script(key).replace("/root/", f"{home}/").replace(
        "/etc/ssh/ssh_host_*_key.pub", "/dev/null")
    for _ in range(2):
        subprocess.run(["sh", "-c", script], check=True)
    assert (home / ".ssh" / "authorized_keys").read_text() == f"{key}\n"


KEPT = 'signer1 namespaces="git" ssh-ed25519 AAAAkept\n'


# What the primary's allowed-signers file holds before an install -> after (the spec: unsigned)
ANCHORS = [
    (None, f"{UNSIGNED}\n"),  # a first install, or a lost file
    ("", f"{UNSIGNED}\n"),
    ("# only a comment\n", f"{UNSIGNED}\n"),
    (KEPT, KEPT),  # moved by an accepted commit since: kept
    (f"{UNSIGNED}\n", f"{UNSIGNED}\n"),
]


@pytest.mark.parametrize(("before", "after"), ANCHORS)
def test_the_trust_anchor_is_written_unless_the_agent_has_one(
        tmp_path: Path, cluster, before: str | None, after: str) -> None:  # noqa: ANN001
    paths = Paths(tmp_path)
    paths.state.mkdir(parents=True)
    if before is not None:
        paths.allowed_signers.write_text(before)
    subprocess.run(["sh", "-c", anchor_script(paths, cluster)], check=True)
    assert paths.allowed_signers.read_text() == after


GITHUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
OTHER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKt+0jp+xwfrxL6ICTUZ+c3b9Ztsn443gdkKYU/t6hdT"


@pytest.fixture
def trusted(tmp_path: Path) -> list[Path]:
    """The files install looks in: known_hosts beside the spec, the operator's, the system's."""
    beside, mine, system = tmp_path / "spec-known_hosts", tmp_path / "mine", tmp_path / "system"
    beside.write_text(f"[git.example.org]:2222 {OTHER}\n")
    mine.write_text(f"github.com {GITHUB}\n[git.example.org]:2222 {GITHUB}\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(mine)], check=True)  # Debian hashes
    system.write_text(f"10.1.10.241,node1 {OTHER}\n@cert-authority *.example.org {GITHUB}\n")
    return [beside, tmp_path / "missing", mine, system]


# The upstream -> the key pinned for it (None: nothing to pin)
UPSTREAMS = [
    (None, None),
    ("https://github.com/me/arrakis.git", None),
    ("git@github.com:me/arrakis.git", GITHUB),  # found hashed, in the operator's own file
    ("ssh://git@GitHub.com/me/arrakis.git", GITHUB),
    ("ssh://git@git.example.org:2222/arrakis.git", OTHER),  # beside the spec: first
    ("root@10.1.10.241:/srv/upstream.git", OTHER),
    ("git@mirror.example.org:arrakis.git", GITHUB),  # a certificate authority for the domain
]


@pytest.mark.parametrize(("upstream", "key"), UPSTREAMS)
def test_the_upstream_s_host_key_is_pinned_from_what_the_operator_trusts(
        trusted: list[Path], upstream: str | None, key: str | None) -> None:
    pinned = upstream_known_hosts(upstream, trusted)
    if key is None:
        assert pinned == ""
    else:
        assert pinned.endswith(f" {key}\n") and pinned.count("\n") == 1


@pytest.mark.parametrize("upstream", ["git@gitlab.com:me/arrakis.git",
                                      "ssh://git@github.com:2222/me/arrakis.git"])
def test_an_upstream_host_nobody_trusts_is_never_pinned(trusted: list[Path],
                                                        upstream: str) -> None:
    with pytest.raises(PiclError) as refused:
        upstream_known_hosts(upstream, trusted)
    message = str(refused.value)
    assert message.startswith(f"[agent].upstream {upstream}: no host key for ")
    assert str(trusted[2]) in message and "known_hosts beside cluster.toml" in message


def with_users(tmp_path: Path, users: str) -> Cluster:
    (tmp_path / "cluster.toml").write_text(spec().split("[[users]]")[0] + users + "\n[agent]\n")
    return load(tmp_path / "cluster.toml")


ROOT = '[[users]]\nname = "root"\nuid = 0\n'


@pytest.mark.parametrize(("users", "who"), [
    ('[[users]]\nname = "federico"\nuid = 1000\n', "federico"),
    (ROOT + '[[users]]\nname = "ada"\nuid = 1001\n', "ada"),
    (ROOT, "root"),
    ("", "root"),
])
def test_who_pushes(tmp_path: Path, users: str, who: str) -> None:
    assert pusher(with_users(tmp_path, users)) == who


@pytest.mark.parametrize(("users", "there"), [
    (ROOT, "yes"),
    ('[[users]]\nname = "nosuchpusher9"\nuid = 1000\n', "no"),
])
def test_the_pusher_is_looked_for_before_anything_is_installed(tmp_path: Path, users: str,
                                                               there: str) -> None:
    script = pusher_script(with_users(tmp_path, users))
    assert subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                          check=True).stdout.strip() == there


def test_the_repository_belongs_to_the_pushers_group(cluster) -> None:  # noqa: ANN001
    lines = prepare_script(Paths(), cluster).splitlines()
    assert "getent group picl >/dev/null || groupadd --system picl" in lines
    assert "usermod -a -G picl federico" in lines
    assert any(line.startswith("chgrp -R picl /srv/picl/cluster.git && chmod -R g+rwX")
               for line in lines)


def test_pip_installs_offline_without_compiling_every_module(cluster) -> None:  # noqa: ANN001
    pips = [line for line in prepare_script(Paths(), cluster).splitlines()
            if '"$pip" install' in line]
    assert len(pips) == 2
    assert all("--no-index" in line and "--no-compile" in line for line in pips)
