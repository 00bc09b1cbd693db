"""Git repositories in a temporary directory: the primary's bare one and a person's clone."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from picl.reconciler.paths import Paths

IDENTITY = ["-c", "user.name=Federico", "-c", "user.email=federico@example.org",
            "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *IDENTITY, *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def keygen(path: Path, comment: str) -> str:
    """A fresh ed25519 key pair at `path`; returns the public key line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f",
                    str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


class Clone:
    """A person's clone that pushes to the primary's bare repository."""

    def __init__(self, root: Path, bare: Path):
        self.dir = root
        self.bare = bare
        root.mkdir(parents=True)
        git(root, "init", "-q")
        git(root, "remote", "add", "cluster", str(bare))

    def commit(self, files: dict[str, str], message: str, key: Path | None = None) -> str:
        for name, text in files.items():
            (self.dir / name).parent.mkdir(parents=True, exist_ok=True)
            (self.dir / name).write_text(text)
        git(self.dir, "add", "-A")
        sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}"] if key else []
        subprocess.run(["git", *IDENTITY, *sign, "commit", "-q", "--allow-empty",
                        *(["-S"] if key else []), "-m", message],
                       cwd=self.dir, check=True, capture_output=True)
        return git(self.dir, "rev-parse", "HEAD")

    def push(self, force: bool = False) -> None:
        git(self.dir, "push", "-q", *(["--force"] if force else []), "cluster", "HEAD:main")


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    """An agent's layout under a temporary root, its bare repository made."""
    paths = Paths(tmp_path / "root")
    paths.repository.parent.mkdir(parents=True)
    git(paths.repository.parent, "init", "-q", "--bare", str(paths.repository))
    return paths


@pytest.fixture
def clone(tmp_path: Path, paths: Paths) -> Clone:
    return Clone(tmp_path / "person", paths.repository)
