"""Commit signatures: with `[agent].signed_by`, only commits signed by those SSH keys apply.

git checks the signature (`git verify-commit`) against an allowed-signers file. The keys trusted
are those of the revision last accepted, never those of the commit being checked: a commit
cannot let itself in by naming its own key. The first revision, with nothing accepted before
it, is checked against the keys the operator's spec had at install.
Only the tip is checked: its signature covers its whole tree, which is what is applied.

Only SSH signatures count. git picks the program that checks a signature from the signature
itself, whatever gpg.format says: an OpenPGP one would be checked against root's keyring, an
X.509 one against gpgsm's. So the signature's kind is read from the commit first, and every
other checker is pointed at a program that always fails.

The allowed-signers file is the trust anchor, and always says something: keys, or that
commits apply unsigned. A missing or empty one means it was lost, and nothing new applies.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from picl.reconciler.errors import Stalled

# Said by the file when [agent].signed_by is empty (a comment to ssh-keygen).
UNSIGNED = "# picl: [agent].signed_by is empty: commits apply unsigned"
SSH_ARMOR = "-----BEGIN SSH SIGNATURE-----"
SIGNATURE_HEADERS = ("gpgsig", "gpgsig-sha256")
KINDS = {"-----BEGIN PGP SIGNATURE-----": "OpenPGP (gpg)",
         "-----BEGIN PGP MESSAGE-----": "OpenPGP (gpg)",
         "-----BEGIN SIGNED MESSAGE-----": "X.509 (gpgsm)"}
NEVER = "/bin/false"  # the checker of every kind but SSH


def allowed_signers(keys: list[str]) -> str:
    """The allowed-signers file for `keys` (ssh-keygen(1), ALLOWED SIGNERS), for git only.

    With no key, a file that says commits apply unsigned: never an empty one.
    """
    lines = []
    for number, key in enumerate(keys, 1):
        kind, data = key.split()[:2]
        lines.append(f'signer{number} namespaces="git" {kind} {data}')
    return "".join(f"{line}\n" for line in lines or [UNSIGNED])


def trusted_keys(path: Path) -> list[str] | None:
    """The keys commits must be signed by; None when the file says commits apply unsigned.

    Raises Stalled (NoAllowedSigners) when the file is missing, unreadable or names no key
    without saying so: verification is never turned off by a file that went away.
    """
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        why = "is missing" if isinstance(exc, FileNotFoundError) else f"cannot be read ({exc})"
        raise _lost(path, why) from None
    lines = [line.strip() for line in text.splitlines()]
    keys = [" ".join(line.split()[2:4]) for line in lines if line and not line.startswith("#")]
    if keys:
        return keys
    if UNSIGNED in lines:
        return None
    raise _lost(path, "names no key")


def _lost(path: Path, why: str) -> Stalled:
    return Stalled("NoAllowedSigners",
                   f"{path} {why}: the keys allowed to sign commits are unknown, so no new "
                   "commit is applied; run `picl agent install` again to write it from your "
                   "spec's [agent].signed_by")


def signature_kind(commit: str) -> str | None:
    """The kind of signature a raw commit object carries: "ssh", another kind's name, or None.

    Every signature header counts (a sha1 and a sha256 one may both be there): all must be SSH.
    """
    headers, _, _ = commit.partition("\n\n")
    signatures: list[str] = []
    inside = False
    for line in headers.splitlines():
        if line.startswith(" ") and inside:
            signatures[-1] += "\n" + line[1:]
            continue
        name, _, value = line.partition(" ")
        inside = name in SIGNATURE_HEADERS
        if inside:
            signatures.append(value)
    if not signatures:
        return None
    for signature in signatures:
        first = signature.strip().splitlines()[0] if signature.strip() else ""
        if first != SSH_ARMOR:
            return KINDS.get(first, "an unknown kind")
    return "ssh"


def verify(checkout: Path, sha: str, signers: Path) -> str:
    """Check `sha`'s signature against the allowed signers; returns git's word on it.

    Raises Stalled (VerificationFailed) for an unsigned commit, one signed with anything but
    an SSH key, or one signed by another key.
    """
    raw = subprocess.run(["git", "cat-file", "commit", sha], cwd=checkout, capture_output=True,
                         text=True, errors="replace", stdin=subprocess.DEVNULL)
    if raw.returncode != 0:
        raise _refused(sha, f"it cannot be read ({raw.stderr.strip() or 'git cat-file failed'})")
    kind = signature_kind(raw.stdout)
    if kind is None:
        raise _refused(sha, "it is not signed")
    if kind != "ssh":
        raise _refused(sha, f"it is signed with {kind}, and only SSH signatures count")
    proc = subprocess.run(
        ["git", "-c", "gpg.format=ssh", "-c", "gpg.ssh.program=ssh-keygen",
         "-c", f"gpg.ssh.allowedSignersFile={signers}",
         "-c", f"gpg.program={NEVER}", "-c", f"gpg.openpgp.program={NEVER}",
         "-c", f"gpg.x509.program={NEVER}",
         "verify-commit", "--raw", sha],
        cwd=checkout, capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )
    said = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    if proc.returncode == 0:
        return said[0] if said else "good signature"
    if not said or any("no signature found" in line for line in said):
        why = "it is not signed"
    elif any("No principal matched" in line or "not allowed" in line for line in said):
        why = "it is signed by a key that signed_by does not list"
    else:
        why = f"its signature does not verify ({said[-1]})"
    raise _refused(sha, why)


def _refused(sha: str, why: str) -> Stalled:
    return Stalled("VerificationFailed",
                   f"commit {sha[:12]} is refused: {why}; sign it with a key of "
                   "[agent].signed_by (git commit -S, gpg.format=ssh)")
