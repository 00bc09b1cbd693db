"""NodeState: the one-command fact. Declarations merged and output parsed, as data; its script
run for real here, and through pyinfra's fact API on a lab node."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from picl.facts.node import (
    MARK,
    NodeState,
    Observed,
    Reads,
    Stat,
    merged,
    parse,
    script,
    sections,
)


def archive(files: dict[str, bytes], directories: tuple[str, ...] = ()) -> str:
    """What `tar | base64` prints for these files, as the script runs it."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for path in directories:
            info = tarfile.TarInfo(path)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
    return base64.b64encode(data.getvalue()).decode()


FILES = {
    "/etc/hosts": b"127.0.0.1 localhost\n",
    "/etc/fstab": b"# caf\xe9\nproc /proc proc defaults 0 0",  # not UTF-8, no final newline
    "/etc/motd": b"",
    "/home/pi/.ssh/authorized_keys": f"{MARK} not a marker\n".encode(),
    "/etc/ssh/ssh_host_ed25519_key.pub": b"ssh-ed25519 AAAA root@node1\n",
}
OUTPUT = [
    f"{MARK} passwd", "root:x:0:0:root:/root:/bin/bash", "pi:x:1000:1000::/home/pi:/bin/bash",
    "nohome:x:1001:1001:::/bin/sh",
    f"{MARK} group", "root:x:0:", "sudo:x:27:pi,ann", "pi:x:1000:",
    f"{MARK} kernel /proc/sys/kernel/hostname", "node1",
    f"{MARK} files", archive(FILES, directories=("/srv/data",)),
    f"{MARK} stat",
    "root root 644 0 0 regular file\t/etc/motd\t/etc/motd",
    "root root 777 0 0 symbolic link\t/etc/localtime\t/etc/localtime -> /usr/share/zoneinfo/"
    "Europe/Rome",
    "pi pi 755 1000 1000 directory\t/home/pi\t/home/pi",
    "pi pi 600 1000 1000 regular file\t/home/pi/.ssh/id_ed25519\t/home/pi/.ssh/id_ed25519",
    f"{MARK} digests pi nobody",
    "ab12  /etc/NetworkManager/system-connections/picl-wifi.nmconnection",
    "e3b0c442  /dev/fd/3", "0000  /dev/null",
    f"{MARK} packages", "htop ii  3.2.2-2", "stress un  ", "openmpi-bin un  ",
    f"{MARK} candidate openmpi-bin", "openmpi-bin:", "  Installed: (none)",
    "  Candidate: 4.1.4-3+b1",
    f"{MARK} candidate mpich", "mpich:", "  Installed: (none)", "  Candidate: (none)",
    f"{MARK} units", "NetworkManager.service gone.service masked.service",
    "LoadState=loaded", "UnitFileState=enabled", "ActiveState=active", "",
    "LoadState=not-found", "UnitFileState=", "ActiveState=inactive", "",
    "ActiveState=inactive", "UnitFileState=masked", "LoadState=masked",
    f"{MARK} exists", "/usr/sbin/NetworkManager",
    f"{MARK} command slurmd", "NodeName=node1 CPUs=4",
]


def test_sections_split_at_markers() -> None:
    found = sections(OUTPUT)
    assert found["group"] == ["root:x:0:", "sudo:x:27:pi,ann", "pi:x:1000:"]
    assert found["exists"] == ["/usr/sbin/NetworkManager"]


@pytest.mark.parametrize(("attribute", "expected"), [
    ("kernel", {"/proc/sys/kernel/hostname": ["node1"]}),
    ("links", {"/etc/localtime": "/usr/share/zoneinfo/Europe/Rome"}),
    ("units", {"NetworkManager.service": ("enabled", "active"),
               "gone.service": ("absent", "absent"), "masked.service": ("masked", "inactive")}),
    ("existing", {"/usr/sbin/NetworkManager"}),
    ("digests", {"/etc/NetworkManager/system-connections/picl-wifi.nmconnection": "ab12"}),
    ("password_digests", {"pi": "e3b0c442", "nobody": "0000"}),
    ("packages", {"htop": True, "stress": False, "openmpi-bin": False}),
    ("versions", {"htop": "3.2.2-2", "openmpi-bin": "4.1.4-3+b1", "mpich": None}),
    ("outputs", {"slurmd": ["NodeName=node1 CPUs=4"]}),
])
def test_parsed(attribute: str, expected: object) -> None:
    assert getattr(parse(OUTPUT), attribute) == expected


def test_files_are_bytes_as_on_disk_and_text_on_request() -> None:
    observed = parse(OUTPUT)
    assert observed.data("/etc/fstab") == FILES["/etc/fstab"]
    assert observed.file("/etc/fstab") == "# caf\ufffd\nproc /proc proc defaults 0 0"
    assert observed.file("/etc/motd") == ""  # empty, not absent
    assert observed.file("/etc/chrony/chrony.conf") is None
    assert observed.file("/srv/data") is None  # a directory is no file
    assert observed.matching("/etc/ssh/ssh_host_*_key.pub") == {
        "/etc/ssh/ssh_host_ed25519_key.pub": "ssh-ed25519 AAAA root@node1\n"}


def test_accounts_groups_and_homes() -> None:
    observed = parse(OUTPUT)
    assert observed.accounts["pi"].uid == 1000 and observed.accounts["pi"].home == "/home/pi"
    assert observed.supplementary_groups("pi") == {"sudo"}
    assert observed.home_file("pi", ".ssh/authorized_keys") == f"{MARK} not a marker\n"
    assert observed.home_stat("pi", ".ssh/id_ed25519") == Stat("pi", "pi", "0600", 1000, 1000,
                                                               "regular file")
    assert observed.home("nohome") == observed.home("nobody") == "/nonexistent"
    assert observed.stats["/etc/motd"] == Stat("root", "root", "0644", 0, 0, "regular file")


def test_declarations_merge_each_item_once_in_order() -> None:
    users = Reads(files=("/etc/sudoers.d/picl-pi",), passwords=("pi",))
    ssh = Reads(files=("/etc/ssh/ssh_known_hosts",), home_files=(("pi", ".ssh/k"),))
    network = Reads(files=("/etc/ssh/ssh_known_hosts", "/etc/dhcpcd.conf"), units=("a", "b"))
    assert merged([users, ssh, network]) == Reads(
        files=("/etc/sudoers.d/picl-pi", "/etc/ssh/ssh_known_hosts", "/etc/dhcpcd.conf"),
        home_files=(("pi", ".ssh/k"),), passwords=("pi",), units=("a", "b"))
    assert merged([]) == Reads()


PROGRAMS = ("getent", "tar", "base64", "stat", "sha256sum", "dpkg-query", "apt-cache",
            "systemctl")


@pytest.mark.parametrize(("reads", "programs"), [
    (Reads(), []),
    (Reads(files=tuple(f"/etc/f{i}" for i in range(50)), patterns=("/etc/*.pub",),
           home_files=tuple((u, ".ssh/k") for u in ("a", "b", "c"))), ["tar", "base64", "stat"]),
    (Reads(stats=tuple(f"/srv/d{i}" for i in range(20)), links=("/etc/localtime",),
           home_stats=(("a", ".ssh/id"),)), ["stat"]),
    (Reads(secret_files=("/etc/s1", "/etc/s2"), passwords=("a", "b", "c")), ["sha256sum", "stat"]),
    (Reads(passwords=tuple(f"u{i}" for i in range(9))), ["sha256sum", "sha256sum"]),  # 7 fds
    (Reads(packages=("a", "b"), versions=("c",)), ["dpkg-query", "apt-cache"]),  # until installed
    (Reads(units=("a.service", "b.service")), ["systemctl"]),
    (Reads(kernel=("/proc/self/status",), exists=("/a", "/b")), []),  # the shell reads them
])
def test_the_programs_a_read_starts_do_not_grow_with_what_it_reads(
        reads: Reads, programs: list[str]) -> None:
    text = script(reads)
    started = [word for word in PROGRAMS for _ in range(text.count(word + " "))]
    assert sorted(started) == sorted(["getent", "getent", *programs])  # accounts and groups


def test_script_runs_here_and_reads_this_machine(tmp_path: Path) -> None:
    managed = tmp_path / "it's a file"
    managed.write_text("no newline at the end")
    (tmp_path / "hard").hardlink_to(managed)  # tar must not store it as a link to the first
    secret = tmp_path / "psk"
    secret.write_text("hunter22")
    link = tmp_path / "link"
    link.symlink_to("/usr/share/zoneinfo/Etc/UTC")
    reads = Reads(files=(str(managed), str(tmp_path / "hard"), "/nonexistent/x", str(tmp_path)),
                  stats=(str(tmp_path),), links=(str(link),),
                  packages=("bash", "no-such-package"), exists=("/bin/sh", "/nonexistent/y"),
                  secret_files=(str(secret),), units=("no-such-unit.service",),
                  versions=("bash", "no-such-package"),
                  home_files=(("root", ".profile"), ("nobody-here", ".profile")),
                  home_stats=(("root", ""),), passwords=("root", "nobody-here"),
                  kernel=("/proc/self/status",), commands=(("answer", "echo 42"),))
    for shell in ("sh", "bash"):
        out = subprocess.run([shell, "-c", script(reads)], capture_output=True, text=True,
                             check=True)
        observed = parse(out.stdout.splitlines())
        assert observed.accounts["root"].uid == 0
        assert observed.file(str(managed)) == "no newline at the end"
        assert observed.file(str(tmp_path / "hard")) == "no newline at the end"
        assert observed.file("/nonexistent/x") is None
        assert observed.file(str(tmp_path)) is None
        assert observed.stats[str(tmp_path)].kind == "directory"
        assert observed.links == {str(link): "/usr/share/zoneinfo/Etc/UTC"}
        assert observed.packages.get("bash") is True
        assert "no-such-package" not in observed.packages
        assert observed.home_file("root", ".profile") == Path("/root/.profile").read_text()
        assert observed.home_file("nobody-here", ".profile") is None
        assert observed.home_stat("root", "") == observed.stats["/root"]
        assert observed.password_digests["nobody-here"] == hashlib.sha256(b"").hexdigest()
        hashed = next(line.split(":")[1] for line in Path("/etc/shadow").read_text().splitlines()
                      if line.startswith("root:"))
        assert observed.password_digests["root"] == hashlib.sha256(
            hashed.encode() + b"\n").hexdigest()
        assert hashed not in out.stdout
        enabled, active = observed.units["no-such-unit.service"]
        assert enabled and active and enabled != "enabled"  # two words, whatever systemctl says
        assert observed.existing == {"/bin/sh"}
        allowed = next(line for line in observed.kernel["/proc/self/status"]
                       if line.startswith("Cpus_allowed_list:"))
        assert allowed.split()[1]
        bash = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "bash"], capture_output=True,
                              text=True, check=True).stdout
        assert observed.versions["bash"] == bash and observed.versions["no-such-package"] is None
        assert observed.digests[str(secret)] == hashlib.sha256(b"hunter22").hexdigest()
        assert "hunter22" not in out.stdout
        assert observed.outputs == {"answer": ["42"]}


def test_a_package_not_installed_reads_as_the_version_apt_would_install() -> None:
    policy = subprocess.run(["apt-cache", "policy", "openmpi-bin"], capture_output=True,
                            text=True).stdout
    said = dict(line.strip().split(": ", 1) for line in policy.splitlines()[1:3])
    if said.get("Installed") != "(none)" or said.get("Candidate") in (None, "(none)"):
        pytest.skip("needs openmpi-bin known to apt here and not installed")
    out = subprocess.run(["sh", "-c", script(Reads(versions=("openmpi-bin",)))],
                         capture_output=True, text=True, check=True)
    assert parse(out.stdout.splitlines()).versions == {"openmpi-bin": said["Candidate"]}


def test_node_state_is_a_pyinfra_fact_that_runs_through_pyinfra(tmp_path: Path) -> None:
    """picl reads nodes with the script over OpenSSH; the same fact serves a pyinfra deploy."""
    from pyinfra.api import Config, Inventory, State
    from pyinfra.api.connect import connect_all, disconnect_all

    managed = tmp_path / "motd"
    managed.write_text("the spice must flow\n")
    state = State(Inventory((["@local"], {})), Config())
    connect_all(state)
    try:
        (host,) = state.inventory
        observed = host.get_fact(NodeState, reads=Reads(files=(str(managed),)))
    finally:
        disconnect_all(state)
    assert isinstance(observed, Observed)
    assert observed.file(str(managed)) == "the spice must flow\n"
    assert observed.accounts["root"].uid == 0


# Inside the lab's network: node1 read twice, through pyinfra's fact API (paramiko, `sh -c`)
# and as picl's plan reads it (OpenSSH, the login shell); both as JSON.
ON_LAB = """
import dataclasses, json, sys
from picl.transport.connection import Connection
from picl.deploy.converge import _session, read_nodes
from picl.deploy.plan import reads
from picl.facts.node import NodeState
from picl.spec import load

cluster = load(sys.argv[1])
node = cluster.node("node1")
what = reads(cluster, node)
connection = Connection.from_environ()
state, host, _ = _session(node, connection)
by_pyinfra = host.get_fact(NodeState, reads=what)
(by_plan,) = read_nodes({node.name: (node, what)}, connection)

def shown(observed):
    found = dataclasses.asdict(observed)
    found.pop("kernel")  # /proc/self/status: each shell's own
    found["files"] = {path: data.hex() for path, data in found["files"].items()}
    found["existing"] = sorted(found["existing"])
    return found

print(json.dumps({"pyinfra": shown(by_pyinfra), "plan": shown(by_plan.value)}))
"""


@pytest.mark.lab
def test_node_state_reads_a_lab_node_through_pyinfra_as_the_plan_does(lab) -> None:
    out = lab.exec([sys.executable, "-c", ON_LAB, str(lab.spec)], timeout=300)
    got = json.loads(out.stdout)
    assert got["pyinfra"] == got["plan"]
    observed = got["plan"]
    assert observed["accounts"]["root"]["uid"] == 0
    assert bytes.fromhex(observed["files"]["/etc/hostname"]).decode().strip() in (
        "node1", "raspberrypi")
    assert "/etc/fstab" in observed["files"]


def test_cores_are_what_nproc_counts() -> None:
    from picl.deploy import mpi

    out = subprocess.run(["sh", "-c", script(Reads(kernel=(mpi.STATUS,)))],
                         capture_output=True, text=True, check=True)
    assert mpi.cores(parse(out.stdout.splitlines())) == len(os.sched_getaffinity(0))
