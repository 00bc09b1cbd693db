"""A lab of its own for the changes that can cut picl off (fstab, network), and the spec they
are made from: the repository's nodes and network, with no users or packages to install, so
that each apply is about what a test changes."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import Lab, picl

PSK = "lab-wifi-7f3a9c-never-shown"
CONFIRM_TIMEOUT = "10"  # seconds: the least picl accepts, so a revert comes quickly

BASE = """\
[cluster]
name = "arrakis"
primary = "node0"

[network]
subnet = "{subnet}"
interface = "eth0"

[network.wifi]
ssid = "ato-2020"
psk = {{ secret = "wifi_psk" }}
country = "US"
"""
NODE = '\n[[nodes]]\nname = "{name}"\naddress = "10.1.10.{host}"\n'
NODES = {"node0": 240, "node1": 241, "node2": 242}

SHARE = """
[[shares]]
name = "shared"
server = "node0"
export = "/srv/shared"
mount = "/shared"
clients = ["node1", "node2"]
"""


def mount(node: str, what: str, where: str, kind: str, options: str = "defaults,nofail") -> str:
    return (f'\n[[mounts]]\nnodes = ["{node}"]\nwhat = "{what}"\nwhere = "{where}"\n'
            f'type = "{kind}"\noptions = "{options}"\n')


class Risky:
    """Write specs for the lab, run picl on them, and reboot its nodes."""

    def __init__(self, lab: Lab, root: Path, confirm_timeout: str | None = CONFIRM_TIMEOUT):
        """`confirm_timeout` None: the lab's default (VM nodes are given longer)."""
        self.lab = lab
        self.root = root
        self.confirm_timeout = confirm_timeout
        self.secrets = root / "secrets.toml"
        self.secrets.write_text(f'wifi_psk = "{PSK}"\n')
        self.secrets.chmod(0o600)
        self.count = 0

    def spec(self, extra: str = "", subnet: str = "10.1.10.0/24",
             nodes: tuple[str, ...] = tuple(NODES)) -> Path:
        self.count += 1
        path = self.root / f"cluster-{self.count}.toml"
        text = BASE.format(subnet=subnet)
        text += "".join(NODE.format(name=n, host=NODES[n]) for n in nodes)
        path.write_text(text + extra)
        return path

    def environ(self, spec: Path) -> dict[str, str]:
        env = dict(os.environ, PICL_SPEC=str(spec), PICL_LAB_NAME=self.lab.name,
                   PICL_LOCK_DIR=str(self.root / "lock"))
        env.pop("PICL_IN_LAB", None)
        env.pop("PICL_CONFIRM_TIMEOUT", None)
        if self.confirm_timeout:
            env["PICL_CONFIRM_TIMEOUT"] = self.confirm_timeout
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-c", "from picl.cli import main; main()", "--secrets",
                str(self.secrets), "--lab", *args]

    def picl(
        self, spec: Path, *args: str, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """`picl --lab ARGS` on `spec`; the Wi-Fi key must never be in what it prints."""
        result = subprocess.run(self.argv(*args), env=self.environ(spec), capture_output=True,
                                text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        assert PSK not in result.stdout + result.stderr
        return result

    def apply(
        self, spec: Path, *nodes: str, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        return self.picl(spec, "apply", "--yes", *(f"--node={n}" for n in nodes), timeout=timeout)

    def fstab(self, node: str) -> bytes:
        return base64.b64decode(self.lab.ssh(node, "base64 -w0 /etc/fstab").stdout)

    def write_fstab(self, node: str, data: bytes) -> None:
        encoded = base64.b64encode(data).decode()
        self.lab.ssh(node, f"echo {encoded} | base64 -d > /etc/fstab && systemctl daemon-reload")

    def boot_id(self, node: str) -> str:
        return self.lab.ssh(node, "cat /proc/sys/kernel/random/boot_id").stdout.strip()

    def reboot(self, node: str) -> None:
        """Reboot the node; return once it has booted again and answers SSH."""
        before = self.boot_id(node)
        self.lab.ssh(node, "systemctl reboot", check=False, timeout=30)
        self.wait_booted(node, before)

    def wait_booted(self, node: str, old_boot: str, timeout: float = 180) -> None:
        """Wait until the node answers SSH on a new boot (one that hangs is one more try)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                answer = self.lab.ssh(node, "cat /proc/sys/kernel/random/boot_id", check=False,
                                      timeout=30)
            except subprocess.TimeoutExpired:
                answer = None
            if answer and answer.returncode == 0 and answer.stdout.strip() != old_boot:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{node} did not come back within {timeout:.0f}s")
            time.sleep(1)


def picl_lab(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    """`picl lab ...` on this lab (start and kill its nodes)."""
    return picl(*args, spec=lab.spec, lab_name=lab.name, check=True)
