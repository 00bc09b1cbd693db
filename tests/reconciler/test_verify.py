"""Signed commits, checked by git with real ssh-keygen keys: good, unsigned, another key."""

from __future__ import annotations

from pathlib import Path

import pytest

from picl.reconciler.errors import Stalled
from picl.reconciler.paths import Paths
from picl.reconciler.source import Source
from picl.reconciler.verify import allowed_signers, trusted_keys, verify
from tests.reconciler.conftest import Clone, keygen

ALICE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKt+0jp+xwfrxL6ICTUZ+c3b9Ztsn443gdkKYU/t6hdT alice"
BOB = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 bob@laptop"


def test_allowed_signers_file() -> None:
    assert allowed_signers([ALICE, BOB]) == (
        'signer1 namespaces="git" ssh-ed25519 '
        "AAAAC3NzaC1lZDI1NTE5AAAAIKt+0jp+xwfrxL6ICTUZ+c3b9Ztsn443gdkKYU/t6hdT\n"
        'signer2 namespaces="git" ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7\n'
    )
    assert allowed_signers([]) == ""


def test_trusted_keys_read_back(tmp_path: Path) -> None:
    path = tmp_path / "allowed_signers"
    assert trusted_keys(path) == []
    path.write_text(allowed_signers([ALICE, BOB]))
    assert trusted_keys(path) == [" ".join(ALICE.split()[:2]), " ".join(BOB.split()[:2])]


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    found = {}
    for name in ("alice", "mallory"):
        keygen(tmp_path / name, name)
        found[name] = tmp_path / name
    return found


@pytest.fixture
def signers(tmp_path: Path, keys: dict[str, Path]) -> Path:
    path = tmp_path / "allowed_signers"
    path.write_text(allowed_signers([keys["alice"].with_suffix(".pub").read_text()]))
    return path


def fetched(paths: Paths, clone: Clone, key: Path | None) -> str:
    sha = clone.commit({"cluster.toml": f"{key}\n"}, "a change", key=key)
    clone.push()
    Source(paths.repository, paths.checkout, "main").fetch()
    return sha


def test_signed_by_a_listed_key(paths: Paths, clone: Clone, keys: dict[str, Path],
                                signers: Path) -> None:
    sha = fetched(paths, clone, keys["alice"])
    assert verify(paths.checkout, sha, signers).startswith('Good "git" signature for signer1')


@pytest.mark.parametrize(("signer", "why"), [
    (None, "it is not signed"),
    ("mallory", "it is signed by a key that signed_by does not list"),
])
def test_refused(paths: Paths, clone: Clone, keys: dict[str, Path], signers: Path,
                 signer: str | None, why: str) -> None:
    sha = fetched(paths, clone, keys[signer] if signer else None)
    with pytest.raises(Stalled) as stalled:
        verify(paths.checkout, sha, signers)
    assert stalled.value.reason == "VerificationFailed"
    assert why in stalled.value.message
    assert sha[:12] in stalled.value.message
