"""NodeState: the one-command fact. Its output parsed, as data; its script run for real here."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from picl.facts.node import (
    ABSENT,
    MARK,
    NodeState,
    Observed,
    Probe,
    Stat,
    parse,
    script,
    sections,
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


OUTPUT = [
    f"{MARK} live_hostname", "node1",
    f"{MARK} boot_id", "abc-123",
    f"{MARK} passwd", "root:x:0:0:root:/root:/bin/bash", "pi:x:1000:1000::/home/pi:/bin/bash",
    f"{MARK} group", "root:x:0:", "sudo:x:27:pi,ann", "pi:x:1000:",
    f"{MARK} target", "graphical.target",
    f"{MARK} localtime", "/usr/share/zoneinfo/Europe/Rome",
    f"{MARK} cores", "4",
    f"{MARK} host_keys", "ssh-ed25519 AAAA root@node1", "",
    f"{MARK} fstab", base64.b64encode(b"# caf\xe9\nproc /proc proc defaults 0 0").decode(),
    f"{MARK} hosts", b64("127.0.0.1 localhost\n"),
    f"{MARK} chrony", ABSENT,
    f"{MARK} packages", "htop ii ", "stress un ",
    f"{MARK} authorized_keys pi", b64(f"{MARK} not a marker\n"),
    f"{MARK} home pi", "pi pi 755 1000 1000 directory",
    f"{MARK} password pi", "e3b0c442",
    f"{MARK} file /etc/motd", "",
    f"{MARK} file_stat /etc/motd", "root root 644 0 0 regular file",
    f"{MARK} units", "NetworkManager.service gone.service masked.service",
    "LoadState=loaded", "UnitFileState=enabled", "ActiveState=active", "",
    "LoadState=not-found", "UnitFileState=", "ActiveState=inactive", "",
    "ActiveState=inactive", "UnitFileState=masked", "LoadState=masked",
    f"{MARK} exists", "/usr/sbin/NetworkManager",
    f"{MARK} digest /etc/wpa_supplicant/wpa_supplicant.conf", ABSENT,
    f"{MARK} digest /etc/NetworkManager/system-connections/picl-wifi.nmconnection", "ab12",
    f"{MARK} version openmpi-bin", "4.1.4-3+b1",
    f"{MARK} version mpich", ABSENT,
]


def test_sections_split_at_markers() -> None:
    found = sections(OUTPUT)
    assert found["passwd"] == ["root:x:0:0:root:/root:/bin/bash",
                               "pi:x:1000:1000::/home/pi:/bin/bash"]
    assert found["chrony"] == [ABSENT]


@pytest.mark.parametrize(("attribute", "expected"), [
    ("live_hostname", "node1"),
    ("boot_id", "abc-123"),
    ("target", "graphical.target"),
    ("timezone", "Europe/Rome"),
    ("host_keys", ["ssh-ed25519 AAAA root@node1"]),
    ("fstab", b"# caf\xe9\nproc /proc proc defaults 0 0"),  # bytes, exactly as on disk
    ("units", {"NetworkManager.service": ("enabled", "active"),
               "gone.service": ("absent", "absent"), "masked.service": ("masked", "inactive")}),
    ("existing", {"/usr/sbin/NetworkManager"}),
    ("digests", {"/etc/wpa_supplicant/wpa_supplicant.conf": None,
                 "/etc/NetworkManager/system-connections/picl-wifi.nmconnection": "ab12"}),
    ("packages", {"htop": True, "stress": False}),
    ("password_digests", {"pi": "e3b0c442"}),
    ("cores", 4),
    ("versions", {"openmpi-bin": "4.1.4-3+b1", "mpich": None}),
])
def test_parsed(attribute: str, expected: object) -> None:
    assert getattr(parse(OUTPUT), attribute) == expected


def test_accounts_groups_and_files() -> None:
    observed = parse(OUTPUT)
    assert observed.accounts["pi"].uid == 1000 and observed.accounts["pi"].home == "/home/pi"
    assert observed.supplementary_groups("pi") == {"sudo"}
    assert observed.file("/etc/hosts") == "127.0.0.1 localhost\n"
    assert observed.file("/etc/chrony/chrony.conf") is None
    assert observed.file("/etc/motd") == ""  # empty, not absent
    assert observed.user_files[("authorized_keys", "pi")] == f"{MARK} not a marker\n"
    assert observed.stats["/etc/motd"] == Stat("root", "root", "0644", 0, 0, "regular file")
    assert observed.user_stats[("home", "pi")].kind == "directory"


def test_script_runs_here_and_reads_this_machine(tmp_path) -> None:
    managed = tmp_path / "it's a file"
    managed.write_text("no newline at the end")
    secret = tmp_path / "psk"
    secret.write_text("hunter22")
    probe = Probe(users=("root", "nobody-here"), files=(str(managed), "/nonexistent/x"),
                  directories=(str(tmp_path),), packages=("bash", "no-such-package"),
                  exists=("/bin/sh", "/nonexistent/y"), secret_files=(str(secret),),
                  units=("no-such-unit.service",), versions=("bash", "no-such-package"))
    out = subprocess.run(["sh", "-c", script(probe)], capture_output=True, text=True, check=True)
    observed = parse(out.stdout.splitlines())
    assert observed.accounts["root"].uid == 0
    assert observed.file(str(managed)) == "no newline at the end"
    assert observed.file("/nonexistent/x") is None
    assert observed.stats[str(tmp_path)].kind == "directory"
    assert observed.packages.get("bash") is True
    assert "no-such-package" not in observed.packages
    assert observed.user_stats[("home", "nobody-here")] is None
    assert len(observed.password_digests["root"]) == 64
    enabled, active = observed.units["no-such-unit.service"]
    assert enabled and active and enabled != "enabled"  # two words, whatever systemctl says
    assert observed.existing == {"/bin/sh"}
    assert observed.cores == len(os.sched_getaffinity(0))
    bash = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "bash"], capture_output=True,
                          text=True, check=True).stdout
    assert observed.versions == {"bash": bash, "no-such-package": None}
    assert observed.digests[str(secret)] == hashlib.sha256(b"hunter22").hexdigest()
    assert "hunter22" not in out.stdout
    fstab = Path("/etc/fstab")
    assert observed.fstab == (fstab.read_bytes() if fstab.exists() else None)


def test_a_package_not_installed_reads_as_the_version_apt_would_install() -> None:
    policy = subprocess.run(["apt-cache", "policy", "openmpi-bin"], capture_output=True,
                            text=True).stdout
    said = dict(line.strip().split(": ", 1) for line in policy.splitlines()[1:3])
    if said.get("Installed") != "(none)" or said.get("Candidate") in (None, "(none)"):
        pytest.skip("needs openmpi-bin known to apt here and not installed")
    out = subprocess.run(["sh", "-c", script(Probe(versions=("openmpi-bin",)))],
                         capture_output=True, text=True, check=True)
    assert parse(out.stdout.splitlines()).versions == {"openmpi-bin": said["Candidate"]}


def test_node_state_is_a_pyinfra_fact_that_runs_through_pyinfra(tmp_path) -> None:
    """picl reads nodes with the script over OpenSSH; the same fact serves a pyinfra deploy."""
    from pyinfra.api import Config, Inventory, State
    from pyinfra.api.connect import connect_all, disconnect_all

    managed = tmp_path / "motd"
    managed.write_text("the spice must flow\n")
    state = State(Inventory((["@local"], {})), Config())
    connect_all(state)
    try:
        (host,) = state.inventory
        observed = host.get_fact(NodeState, probe=Probe(files=(str(managed),)))
    finally:
        disconnect_all(state)
    assert isinstance(observed, Observed)
    assert observed.file(str(managed)) == "the spice must flow\n"
    assert observed.accounts["root"].uid == 0
