"""The cluster key pair of each user with `cluster_key = true`: generated once, kept secret.

The private key lives in the secrets store (secrets.toml, mode 600, never in git) under
`cluster_key_<user>`, so every node, and every later run, gets the same pair. It is generated
by apply (or `picl secrets generate`), never by a plan.
"""

from __future__ import annotations

import subprocess
import tempfile
from functools import partial
from pathlib import Path

from picl.deploy.view import KeyPair
from picl.errors import PiclError
from picl.spec import Cluster, SecretRef
from picl.spec.secrets import ensure


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


def cluster_keys(cluster: Cluster) -> dict[str, KeyPair]:
    """Each cluster-key user's pair that the secrets file holds (a plan reads, never writes)."""
    pairs: dict[str, KeyPair] = {}
    for user in cluster.users:
        private = cluster.secret(SecretRef(secret=secret_name(user.name)))
        if user.cluster_key and private is not None:
            pairs[user.name] = KeyPair(private, public_key(private))
    return pairs


def missing(cluster: Cluster) -> list[str]:
    """The users whose cluster key is not generated yet."""
    return [u.name for u in cluster.users
            if u.cluster_key and cluster.secret(SecretRef(secret=secret_name(u.name))) is None]


def generate_missing(cluster: Cluster, secrets_file: Path) -> list[str]:
    """Generate the cluster keys the secrets file lacks and store them there (atomically, under
    its lock; see picl.spec.secrets); the cluster knows them after. Returns what was done.

    Apply runs this under the converge lock, before it plans: a plan never writes a secret.
    """
    notes = []
    for user in missing(cluster):
        name = secret_name(user)
        comment = f"picl-cluster-{user}@{cluster.cluster.name}"
        private, added = ensure(secrets_file, name, partial(generate, comment))
        cluster.stored(name, private)
        if added:
            notes.append(f"generated the cluster key of {user}, kept in {secrets_file} as {name}")
    return notes
