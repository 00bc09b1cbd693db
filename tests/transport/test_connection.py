"""One trust source for plan (OpenSSH) and apply (paramiko): the same known_hosts files, as data,
then read back by OpenSSH itself (`ssh -G`, no connection made) and by paramiko's own parser."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

import paramiko
import pytest

from picl.errors import PiclError
from picl.transport.connection import GLOBAL_KNOWN_HOSTS, Connection, for_paramiko

HOME = Path.home()
SYSTEM = (Path("/etc/ssh/ssh_known_hosts"), Path("/etc/ssh/ssh_known_hosts2"))

# The environment -> (the user's files, the system's files)
ENVIRONS = [
    ({}, ((HOME / ".ssh/known_hosts", HOME / ".ssh/known_hosts2"), SYSTEM)),
    ({"PICL_KNOWN_HOSTS": "/etc/picl/known_hosts"}, ((Path("/etc/picl/known_hosts"),), SYSTEM)),
    ({"PICL_GLOBAL_KNOWN_HOSTS": "/srv/pinned"},
     ((HOME / ".ssh/known_hosts", HOME / ".ssh/known_hosts2"), (Path("/srv/pinned"),))),
    ({"PICL_KNOWN_HOSTS": "/lab/known_hosts", "PICL_GLOBAL_KNOWN_HOSTS": "/dev/null"},
     ((Path("/lab/known_hosts"),), (Path("/dev/null"),))),
    ({"PICL_GLOBAL_KNOWN_HOSTS": " /a  /b "}, ((HOME / ".ssh/known_hosts",
                                                HOME / ".ssh/known_hosts2"),
                                               (Path("/a"), Path("/b")))),
]


def test_the_files_are_openssh_s_defaults() -> None:
    said = subprocess.run(["ssh", "-G", "-F", "/dev/null", "node1"], capture_output=True,
                          text=True, check=True, stdin=subprocess.DEVNULL).stdout
    found = dict(line.split(" ", 1) for line in said.splitlines() if " " in line)
    user, system = Connection().known_hosts_files()
    assert found["userknownhostsfile"] == " ".join(map(str, user))
    assert found["globalknownhostsfile"] == " ".join(map(str, system))
    assert GLOBAL_KNOWN_HOSTS == SYSTEM


@pytest.mark.parametrize(("environ", "files"), ENVIRONS)
def test_known_hosts_files(environ: dict[str, str],
                           files: tuple[tuple[Path, ...], tuple[Path, ...]]) -> None:
    assert Connection.from_environ(environ).known_hosts_files() == files


def openssh_reads(connection: Connection) -> tuple[str, str]:
    """What OpenSSH says it will check host keys against, with picl's options (no connection)."""
    argv = connection.ssh_argv("10.1.10.241")
    said = subprocess.run([argv[0], "-G", *argv[1:]], capture_output=True, text=True,
                          check=True, stdin=subprocess.DEVNULL).stdout
    found = dict(line.split(" ", 1) for line in said.splitlines() if " " in line)
    return found["userknownhostsfile"], found["globalknownhostsfile"]


@pytest.mark.parametrize(("environ", "files"), ENVIRONS)
def test_openssh_reads_exactly_those_files(
        environ: dict[str, str], files: tuple[tuple[Path, ...], tuple[Path, ...]]) -> None:
    user, system = files
    assert openssh_reads(Connection.from_environ(environ)) == (
        " ".join(map(str, user)), " ".join(map(str, system)))


def host_key(tmp_path: Path, name: str) -> str:
    """A fresh host key's public half, `TYPE BASE64`."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)],
                   check=True)
    return " ".join((tmp_path / f"{name}.pub").read_text().split()[:2])


def trusts(known_hosts: Path, host: str, key: str) -> bool:
    """Whether paramiko, loading this file as pyinfra does, accepts `key` for `host`."""
    kind, data = key.split()
    return paramiko.HostKeys(str(known_hosts)).check(
        host, paramiko.PKey.from_type_string(kind, base64.b64decode(data)))


def test_apply_trusts_a_node_pinned_only_in_the_system_file(tmp_path: Path) -> None:
    node0, node1, node2 = (host_key(tmp_path, n) for n in ("node0", "node1", "node2"))
    user, system = tmp_path / "known_hosts", tmp_path / "ssh_known_hosts"
    user.write_text(f"10.1.10.240 {node0}\n")
    system.write_text(f"# pinned by picl\n10.1.10.241,node1 {node1}\n10.1.10.242 {node2}\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(system)], check=True)  # hashed names
    connection = Connection(known_hosts=user, global_known_hosts=(system, tmp_path / "none"))
    with connection.known_hosts_file("10.1.10.241") as merged:
        assert merged.stat().st_mode & 0o077 == 0
        assert trusts(merged, "10.1.10.241", node1)  # the system's file alone says so
        assert not trusts(merged, "10.1.10.241", node2)
        assert not trusts(merged, "10.1.10.242", node2)  # only the node connected to
    assert not merged.exists()
    with connection.known_hosts_file("10.1.10.240") as merged:
        assert trusts(merged, "10.1.10.240", node0)


def test_a_pattern_and_a_revocation_mean_to_apply_what_they_mean_to_plan(tmp_path: Path) -> None:
    node1, node2 = host_key(tmp_path, "node1"), host_key(tmp_path, "node2")
    user, system = tmp_path / "known_hosts", tmp_path / "ssh_known_hosts"
    user.write_text(f"10.1.10.* {node1}\n10.1.10.242 {node2}\n")
    system.write_text(f"@revoked * {node2}\n")
    connection = Connection(known_hosts=user, global_known_hosts=(system,))
    with connection.known_hosts_file("10.1.10.241") as merged:
        assert trusts(merged, "10.1.10.241", node1)  # by the pattern, as OpenSSH reads it
    with connection.known_hosts_file("10.1.10.242") as merged:
        assert not trusts(merged, "10.1.10.242", node2)  # revoked, whatever else trusts it


def test_pyinfra_is_given_the_merged_file(tmp_path: Path) -> None:
    data = Connection().pyinfra_data(tmp_path / "merged")
    assert data["ssh_known_hosts_file"] == str(tmp_path / "merged")
    assert data["ssh_strict_host_key_checking"] == "yes"


ED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKt+0jp+xwfrxL6ICTUZ+c3b9Ztsn443gdkKYU/t6hdT"
ED2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnwqVu+4ARiHnIe2Zm0XqHLvvITD1vJKjWe2UL6RDeB"
HASHED = "|1|F1E1KeoE/eEWhi10WpGv4OdiO6Y=|3988QV0VE8wmZL7suNrYQLITLCg="

# The lines OpenSSH matches node1 with -> those paramiko is given, node1 by name
LINES = [
    ([f"10.1.10.241 {ED}"], [f"node1 {ED}"]),
    ([f"10.1.10.241,node1 {ED} root@node1"], [f"node1 {ED}"]),
    ([f"{HASHED} {ED}"], [f"node1 {ED}"]),
    ([f"10.1.10.* {ED}", f"!10.1.10.9,* {ED2}"], [f"node1 {ED}", f"node1 {ED2}"]),
    # A marker would end paramiko's reading of the file; it cannot use a certificate authority.
    ([f"@cert-authority * {ED2}", f"node1 {ED}"], [f"node1 {ED}"]),
    # A revoked key: out wherever it is, before the revocation or after.
    ([f"node1 {ED}", f"node1 {ED2}", f"@revoked * {ED}", f"10.1.10.241 {ED}"],
     [f"node1 {ED2}"]),
    # What paramiko cannot read: left out, the lines after it kept.
    (["node1 ssh-ed25519 not*base64", "node1 ssh-unknown AAAA", "node1", f"node1 {ED2}"],
     [f"node1 {ED2}"]),
]


@pytest.mark.parametrize(("lines", "kept"), LINES)
def test_for_paramiko(lines: list[str], kept: list[str]) -> None:
    assert for_paramiko("node1", lines) == kept


def test_a_shared_connection_stays_open_as_long_as_asked(tmp_path: Path) -> None:
    control = tmp_path / "ssh"
    assert "ControlPersist=60" in Connection(control=control).ssh_options(shared=True)
    assert "ControlPersist=86460" in Connection(control=control, persist=86460).ssh_options(
        shared=True)
    assert not any(o.startswith("Control") for o in Connection(control=control).ssh_options())


@pytest.mark.parametrize(
    ("value", "expected"), [(None, 10), ("", 10), ("150", 150), (" 30 ", 30)]
)  # fmt: skip
def test_how_long_a_node_may_take_to_answer(value: str | None, expected: int) -> None:
    environ = {} if value is None else {"PICL_CONNECT_TIMEOUT": value}
    connection = Connection.from_environ(environ)
    assert connection.connect_timeout == expected
    kwargs = connection.pyinfra_data(Path("/dev/null"))["ssh_paramiko_connect_kwargs"]
    assert kwargs == {"timeout": expected, "banner_timeout": expected, "auth_timeout": expected}


@pytest.mark.parametrize("value", ["0", "-5", "1.5", "10s", "3601"])
def test_a_connect_timeout_that_is_no_whole_seconds_is_refused(value: str) -> None:
    with pytest.raises(PiclError, match=rf"PICL_CONNECT_TIMEOUT='{re.escape(value)}': give whole"):
        Connection.from_environ({"PICL_CONNECT_TIMEOUT": value})
