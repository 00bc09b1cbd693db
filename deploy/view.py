"""What planning one node sees: the spec, that node's live state, and what the cluster shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from picl.facts.node import Observed
from picl.spec import Cluster, Node, User


@dataclass(frozen=True)
class KeyPair:
    private: str
    public: str


@dataclass
class ClusterFacts:
    """Inputs shared by every node's plan, resolved once per run."""

    observed: dict[str, Observed] = field(default_factory=dict)  # reachable nodes only
    github_keys: dict[str, list[str]] = field(default_factory=dict)  # username -> keys
    cluster_keys: dict[str, KeyPair] = field(default_factory=dict)  # user -> key pair
    spec_dir: Path = Path(".")
    led_service: dict[str, str] = field(default_factory=dict)  # node path -> content
    login_user: str = "root"  # whom picl logs in as: its keys are changed under a guard


@dataclass(frozen=True)
class NodeView:
    cluster: Cluster
    node: Node
    observed: Observed
    shared: ClusterFacts

    @property
    def is_primary(self) -> bool:
        return self.node.name == self.cluster.cluster.primary


def home(user: User) -> str:
    return "/root" if user.name == "root" else f"/home/{user.name}"
