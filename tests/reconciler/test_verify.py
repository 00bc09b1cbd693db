"""Signed commits, checked by git with real ssh-keygen keys: good, unsigned, another key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from picl.reconciler.errors import Stalled
from picl.reconciler.paths import Paths
from picl.reconciler.source import Source
from picl.reconciler.verify import (
    UNSIGNED,
    allowed_signers,
    signature_kind,
    trusted_keys,
    verify,
)
from tests.reconciler.conftest import Clone, gpg_keygen, keygen

ALICE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKt+0jp+xwfrxL6ICTUZ+c3b9Ztsn443gdkKYU/t6hdT alice"
BOB = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 bob@laptop"


def test_allowed_signers_file() -> None:
    assert allowed_signers([ALICE, BOB]) == (
        'signer1 namespaces="git" ssh-ed25519 '
        "AAAAC3NzaC1lZDI1NTE5AAAAIKt+0jp+xwfrxL6ICTUZ+c3b9Ztsn443gdkKYU/t6hdT\n"
        'signer2 namespaces="git" ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7\n'
    )
    assert allowed_signers([]) == f"{UNSIGNED}\n"  # never empty: empty means lost


def test_trusted_keys_read_back(tmp_path: Path) -> None:
    path = tmp_path / "allowed_signers"
    path.write_text(allowed_signers([ALICE, BOB]))
    assert trusted_keys(path) == [" ".join(ALICE.split()[:2]), " ".join(BOB.split()[:2])]
    path.write_text(allowed_signers([]))
    assert trusted_keys(path) is None  # said so: commits apply unsigned


@pytest.mark.parametrize(("text", "why"), [
    (None, "is missing"),
    ("", "names no key"),
    ("\n# a comment\n", "names no key"),
    (b"\xff\xfe", "cannot be read"),
])
def test_a_lost_trust_anchor_stalls(tmp_path: Path, text: str | bytes | None, why: str) -> None:
    path = tmp_path / "allowed_signers"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    with pytest.raises(Stalled) as stalled:
        trusted_keys(path)
    assert stalled.value.reason == "NoAllowedSigners"
    assert f"{path} {why}" in stalled.value.message


SSH_SIGNATURE = "-----BEGIN SSH SIGNATURE-----\n U1NIU0lH\n -----END SSH SIGNATURE-----"
PGP_SIGNATURE = "-----BEGIN PGP SIGNATURE-----\n \n iHUEABYKAB0W\n -----END PGP SIGNATURE-----"
X509_SIGNATURE = "-----BEGIN SIGNED MESSAGE-----\n MIAGCSqG\n -----END SIGNED MESSAGE-----"
HEAD = "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@x> 1 +0000\n" \
       "committer A <a@x> 1 +0000\n"


# A commit object's headers -> the kind of its signature (None: unsigned)
SIGNATURES = [
    ("", None),
    (f"gpgsig {SSH_SIGNATURE}\n", "ssh"),
    (f"gpgsig {PGP_SIGNATURE}\n", "OpenPGP (gpg)"),
    (f"gpgsig {X509_SIGNATURE}\n", "X.509 (gpgsm)"),
    ("gpgsig -----BEGIN OTHER-----\n x\n", "an unknown kind"),
    ("gpgsig \n", "an unknown kind"),
    # A second signature of another kind: each must be SSH.
    (f"gpgsig {SSH_SIGNATURE}\ngpgsig-sha256 {PGP_SIGNATURE}\n", "OpenPGP (gpg)"),
    (f"gpgsig-sha256 {SSH_SIGNATURE}\n", "ssh"),
    # In the message, a signature is only text.
    (f"\ngpgsig {SSH_SIGNATURE}\n", None),
]


@pytest.mark.parametrize(("headers", "kind"), SIGNATURES)
def test_signature_kind(headers: str, kind: str | None) -> None:
    assert signature_kind(f"{HEAD}{headers}\na change\n") == kind


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


def test_signed_with_gpg_by_a_key_root_trusts(paths: Paths, clone: Clone, signers: Path,
                                              gnupg: Path) -> None:
    fingerprint = gpg_keygen(gnupg, "Mallory <mallory@example.org>")
    sha = clone.commit({"cluster.toml": "mine\n"}, "signed with gpg", gpg=fingerprint)
    clone.push()
    Source(paths.repository, paths.checkout, "main").fetch()
    # What the check prevents: git alone calls it good, the key being in the keyring it reads.
    plain = subprocess.run(["git", "verify-commit", sha], cwd=paths.checkout,
                           capture_output=True, text=True)
    assert plain.returncode == 0 and "Good signature" in plain.stderr
    with pytest.raises(Stalled) as stalled:
        verify(paths.checkout, sha, signers)
    assert stalled.value.reason == "VerificationFailed"
    assert "OpenPGP" in stalled.value.message and "SSH" in stalled.value.message
