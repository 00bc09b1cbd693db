"""Commit signatures: with `[agent].signed_by`, only commits signed by those SSH keys apply.

git checks the signature (`git verify-commit` with gpg.format=ssh) against an allowed-signers
file. The keys trusted are those of the revision last accepted, never those of the commit being
checked: a commit cannot let itself in by naming its own key. The first revision, with nothing
accepted before it, is checked against the keys the operator's spec had at install.
Only the tip is checked: its signature covers its whole tree, which is what is applied.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from picl.reconciler.errors import Stalled


def allowed_signers(keys: list[str]) -> str:
    """The allowed-signers file for `keys` (ssh-keygen(1), ALLOWED SIGNERS), for git only."""
    lines = []
    for number, key in enumerate(keys, 1):
        kind, data = key.split()[:2]
        lines.append(f'signer{number} namespaces="git" {kind} {data}')
    return "".join(f"{line}\n" for line in lines)


def trusted_keys(path: Path) -> list[str]:
    """The keys in an allowed-signers file (none when it does not exist)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [" ".join(line.split()[2:4]) for line in text.splitlines()
            if line.strip() and not line.startswith("#")]


def verify(checkout: Path, sha: str, signers: Path) -> str:
    """Check `sha`'s signature against the allowed signers; returns git's word on it.

    Raises Stalled (VerificationFailed) for an unsigned commit, or one signed by another key.
    """
    proc = subprocess.run(
        ["git", "-c", "gpg.format=ssh", "-c", f"gpg.ssh.allowedSignersFile={signers}",
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
    raise Stalled("VerificationFailed",
                  f"commit {sha[:12]} is refused: {why}; sign it with a key of "
                  "[agent].signed_by (git commit -S, gpg.format=ssh)")
