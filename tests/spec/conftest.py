"""A small but complete spec, and a way to run the installed `picl` on a variant of it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKt+0jp+xwfrxL6ICTUZ+c3b9Ztsn443gdkKYU/t6hdT test"

BASE = f"""\
[cluster]
name = "arrakis"
domain = "cluster"
timezone = "America/New_York"
primary = "node0"

[network]
subnet = "10.1.10.0/24"
interface = "eth0"

[network.wifi]
ssid = "ato-2020"
psk = {{ secret = "wifi_psk" }}
country = "US"

[[nodes]]
name = "node0"
address = "10.1.10.240"
target = "graphical"
leds = "blinkt"

[[nodes]]
name = "node1"
address = "10.1.10.241"

[[nodes]]
name = "node2"
address = "10.1.10.242"
packages = ["stress"]

[[users]]
name = "federico"
uid = 1000
gid = 1000
groups = ["sudo", "adm"]
shell = "/bin/bash"
sudo = "nopasswd"
rename_from = "picocluster"
ssh_keys = ["{KEY}"]
github = ["flucifredi"]
cluster_key = true

[[users]]
name = "root"
uid = 0
password = {{ secret = "root_password_hash" }}

[time]
servers = ["0.debian.pool.ntp.org"]
serve = true

[[shares]]
name = "shared"
server = "node0"
export = "/srv/shared"
mount = "/shared"
clients = "all"
options = "rw"

[[mounts]]
nodes = ["node1"]
what = "LABEL=scratch"
where = "/scratch"
type = "ext4"
options = "defaults,nofail"

[[files]]
path = "/etc/motd"
content = "arrakis\\n"
mode = "0644"

[[files]]
path = "/etc/issue.net"
source = "files/issue"

[packages]
all = ["htop", "openmpi-bin"]

[leds]
mode = "status"
brightness = 0.1

[mpi]
implementation = "openmpi"
nodes = ["node1", "node2"]
slots = 4

[agent]
branch = "main"
interval = "5m"
mode = "enforce"
signed_by = ["{KEY}"]
"""

SECRETS = 'wifi_psk = "correct horse battery staple"\nroot_password_hash = "$6$salt$hash"\n'


@dataclass
class Result:
    code: int
    out: str
    err: str


def picl_command() -> list[str]:
    """The installed console script, as a user would run it."""
    exe = Path(sys.executable).parent / "picl"
    return [str(exe)] if exe.exists() else [shutil.which("picl") or "picl"]


def run_picl(*args: str, cwd: Path | None = None, stdin: str | None = None) -> Result:
    proc = subprocess.run(
        [*picl_command(), *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A cluster repository holding BASE, its secrets and the file it references."""
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "issue").write_text("arrakis\n")
    (tmp_path / "cluster.toml").write_text(BASE)
    (tmp_path / "secrets.toml").write_text(SECRETS)
    (tmp_path / "secrets.toml").chmod(0o600)
    return tmp_path


def marked_line(text: str) -> int:
    """The number of the line a case marks with `#!`, as TOML counts lines."""
    for number, line in enumerate(text.split("\n"), start=1):
        if line.rstrip().endswith("#!"):
            return number
    raise AssertionError("case has no #! marker")


def assert_reported_on_marked_line(repo: Path, text: str, path: str) -> None:
    """`picl validate` of `text` fails naming `path` on the `#!` line, every line located."""
    (repo / "cluster.toml").write_text(text)
    result = run_picl("validate", cwd=repo)
    assert result.code == 1, result
    assert "Traceback" not in result.err
    pattern = rf"^cluster\.toml:{marked_line(text)}:\d+: {re.escape(path)}: \S"
    assert re.search(pattern, result.err, re.MULTILINE), (pattern, result.err)
    for reported in result.err.removesuffix("\n").split("\n"):
        assert re.match(r"cluster\.toml:\d+:\d+: \S", reported), reported
        assert reported.isprintable(), reported  # one line, nothing a terminal would act on
    assert result.out == ""

