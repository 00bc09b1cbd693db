"""The cluster key pair of each user with `cluster_key = true`: generated once, kept secret.

The private key lives in the secrets store (secrets.toml, mode 600, never in git) under
`cluster_key_<user>`, so every node, and every later run, gets the same pair.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from picl.deploy.view import KeyPair
from picl.errors import PiclError
from picl.spec import Cluster, SecretRef


def secret_name(user: str) -> str:
    return f"cluster_key_{user}"


def public_key(private: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "key"
        path.write_text(private)
        path.chmod(0o600)
        result = subprocess.run(["ssh-keygen", "-y", "-f", str(path)],
                                capture_output=True, text=True)
    if result.returncode != 0:
        raise PiclError("a cluster key in the secrets file is not a valid private key")
    return result.stdout.strip()


def generate(comment: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                        "-f", str(path)], check=True, capture_output=True)
        return path.read_text()


def store(secrets_file: Path, name: str, private: str) -> None:
    """Append a secret to the secrets file, creating it readable by its owner only."""
    fd = os.open(secrets_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as out:
        out.write(f"\n{name} = '''\n{private}'''\n")


def cluster_keys(cluster: Cluster, secrets_file: Path) -> tuple[dict[str, KeyPair], list[str]]:
    """Each cluster-key user's pair, generating (and storing) the ones that do not exist yet."""
    pairs: dict[str, KeyPair] = {}
    notes: list[str] = []
    for user in cluster.users:
        if not user.cluster_key:
            continue
        name = secret_name(user.name)
        private = cluster.secret(SecretRef(secret=name))
        if private is None:
            private = generate(f"picl-cluster-{user.name}@{cluster.cluster.name}")
            store(secrets_file, name, private)
            notes.append(f"generated the cluster key of {user.name}, kept in {secrets_file}")
        pairs[user.name] = KeyPair(private, public_key(private))
    return pairs, notes
