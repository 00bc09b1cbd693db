"""Git repositories in a temporary directory: the primary's bare one and a person's clone."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from picl.reconciler.paths import Paths
from picl.reconciler.verify import allowed_signers

IDENTITY = ["-c", "user.name=Federico", "-c", "user.email=federico@example.org",
            "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *IDENTITY, *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def gpg_keygen(home: Path, who: str) -> str:
    """A throwaway OpenPGP signing key in the keyring at `home`; returns its fingerprint."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
                    "--quick-gen-key", who, "ed25519", "sign", "never"],
                   env=env, check=True, capture_output=True)
    listed = subprocess.run(["gpg", "--batch", "--with-colons", "--list-secret-keys"],
                            env=env, check=True, capture_output=True, text=True).stdout
    return next(line.split(":")[9] for line in listed.splitlines() if line.startswith("fpr:"))


def keygen(path: Path, comment: str) -> str:
    """A fresh ed25519 key pair at `path`; returns the public key line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f",
                    str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


def local_ssh(directory: Path, fail: str = "") -> str:
    """An `ssh` for git that runs the remote command here, whatever the host (no network is
    used); or, with `fail`, fails as ssh does (exit 255), saying `fail`. Returns its path."""
    script = directory / "ssh"
    body = f"echo {shlex.quote(fail)} >&2; exit 255" if fail \
        else 'for last; do :; done; exec sh -c "$last"'
    directory.mkdir(parents=True, exist_ok=True)
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


class Clone:
    """A person's clone that pushes to the primary's bare repository."""

    def __init__(self, root: Path, bare: Path):
        self.dir = root
        self.bare = bare
        root.mkdir(parents=True)
        git(root, "init", "-q")
        git(root, "remote", "add", "cluster", str(bare))

    def commit(self, files: dict[str, str], message: str, key: Path | None = None,
               gpg: str | None = None) -> str:
        """Commit `files`; signed with the SSH `key`, or the OpenPGP key of fingerprint `gpg`
        (from the keyring $GNUPGHOME names)."""
        for name, text in files.items():
            (self.dir / name).parent.mkdir(parents=True, exist_ok=True)
            (self.dir / name).write_text(text)
        git(self.dir, "add", "-A")
        sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}"] if key else []
        if gpg:
            sign = ["-c", "gpg.format=openpgp", "-c", f"user.signingkey={gpg}"]
        subprocess.run(["git", *IDENTITY, *sign, "commit", "-q", "--allow-empty",
                        *(["-S"] if key or gpg else []), "-m", message],
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
    # What `picl agent install` leaves for a spec without signed_by: commits apply unsigned.
    paths.state.mkdir(parents=True)
    paths.allowed_signers.write_text(allowed_signers([]))
    return paths


@pytest.fixture
def clone(tmp_path: Path, paths: Paths) -> Clone:
    return Clone(tmp_path / "person", paths.repository)


@pytest.fixture
def gnupg(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An OpenPGP keyring of its own as $GNUPGHOME: the one git would check a GPG signature
    against (root's, on the primary). Short-named: gpg-agent's sockets live in it."""
    home = Path(tempfile.mkdtemp(prefix="picl-gpg-"))
    monkeypatch.setenv("GNUPGHOME", str(home))
    yield home
    subprocess.run(["gpgconf", "--kill", "all"], env={**os.environ, "GNUPGHOME": str(home)},
                   capture_output=True, check=False)
    shutil.rmtree(home, ignore_errors=True)
