"""A spec and node states as data, for planning without nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from picl.deploy import boot, clock, names
from picl.deploy.view import ClusterFacts, KeyPair, NodeView
from picl.facts.node import Account, Group, Observed
from picl.spec import Cluster, load
from tests.spec.conftest import BASE, SECRETS


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    monkeypatch.chdir(tmp_path)  # managed files' sources are read beside the spec
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "issue").write_text("arrakis\n")
    (tmp_path / "cluster.toml").write_text(BASE)
    (tmp_path / "secrets.toml").write_text(SECRETS)
    (tmp_path / "secrets.toml").chmod(0o600)
    return load(tmp_path / "cluster.toml")


def fresh_node(name: str = "node1") -> Observed:
    """A node as the image leaves it: the stock user, no picl anything."""
    return Observed(
        kernel={names.LIVE_HOSTNAME: ["raspberrypi"]},
        accounts={
            "root": Account("root", 0, 0, "/root", "/bin/bash"),
            "picocluster": Account("picocluster", 1000, 1000, "/home/picocluster", "/bin/bash"),
        },
        groups={
            "root": Group("root", 0, ()),
            "sudo": Group("sudo", 27, ("picocluster",)),
            "adm": Group("adm", 4, ()),
            "picocluster": Group("picocluster", 1000, ()),
        },
        links={boot.VENDOR_DEFAULT_TARGET: "graphical.target",
               clock.LOCALTIME: "/usr/share/zoneinfo/Etc/UTC"},
        files={"/etc/ssh/ssh_host_ed25519_key.pub": f"ssh-ed25519 AAAAkey{name} root@{name}\n"
               .encode(), "/etc/hosts": b"127.0.0.1\tlocalhost\n"},
    )


def view(cluster: Cluster, name: str, observed: Observed, **shared: object) -> NodeView:
    facts = ClusterFacts(observed={name: observed}, spec_dir=Path("."), **shared)  # type: ignore[arg-type]
    return NodeView(cluster, cluster.node(name), observed, facts)


PAIR = KeyPair("-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n", "ssh-ed25519 AAAAcluster picl")
