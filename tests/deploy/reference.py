"""The reference spec (cluster.toml) applied to a lab, its secrets in a temporary directory."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SPEC, Lab, picl

MOTD = "arrakis: the spice must flow\n"
GITHUB_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnwqVu+4ARiHnIe2Zm0XqHLvvITD1vJKjWe2UL6RDeB gh"
FOREIGN_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKt+0jp+xwfrxL6ICTUZ+c3b9Ztsn443gdkKYU/t6hdT bob"


def lab_secrets(root: Path) -> Path:
    """A secrets.toml for lab specs (made-up Wi-Fi key, root's password `lab`), mode 600."""
    secrets = root / "secrets.toml"
    hashed = subprocess.run(["openssl", "passwd", "-6", "-salt", "pytest", "lab"],
                            capture_output=True, text=True, check=True).stdout.strip()
    secrets.write_text(f'wifi_psk = "not-a-real-psk"\nroot_password_hash = "{hashed}"\n')
    secrets.chmod(0o600)
    return secrets


def lab_environ(root: Path, github_keys: str) -> dict[str, str]:
    """picl's environment on a lab: GitHub's keys served from a file, its own cache."""
    github = root / "github"
    github.mkdir()
    (github / "flucifredi.keys").write_text(github_keys)
    return {"PICL_GITHUB_URL": github.as_uri(), "XDG_CACHE_HOME": str(root / "cache")}


class Cluster:
    """The reference spec plus a managed file, its secrets in a temporary directory."""

    def __init__(self, lab: Lab, root: Path):
        self.lab = lab
        self.root = root
        self.spec = root / "cluster.toml"
        self.spec.write_text(SPEC.read_text() + f'\n[[files]]\npath = "/etc/motd"\n'
                             f'content = "{MOTD.strip()}\\n"\nmode = "0644"\n')
        self.secrets = lab_secrets(root)
        self.environ = lab_environ(root, GITHUB_KEY + "\n")

    def picl(self, *args: str, spec: Path | None = None) -> subprocess.CompletedProcess[str]:
        """picl on the lab, with this spec and its secrets, or `spec` and the secrets beside it."""
        secrets = ("--secrets", str(self.secrets)) if spec is None else ()
        with pytest.MonkeyPatch.context() as patch:
            for key, value in self.environ.items():
                patch.setenv(key, value)
            return picl(*secrets, "--lab", *args, spec=spec or self.spec,
                        lab_name=self.lab.name)

    def plan(self) -> dict:
        result = self.picl("plan", "--json")
        assert result.returncode in (0, 1), result.stderr
        return json.loads(result.stdout)

    def changed(self) -> set[tuple[str, str]]:
        return {(n["node"], c["resource"]) for n in self.plan()["nodes"] for c in n["changes"]}
