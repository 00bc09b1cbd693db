"""The spec: cluster.toml as validated models. Imports nothing else of picl but its errors."""

from picl.spec.loader import SECRETS_FILE, load, load_secrets
from picl.spec.models import (
    Agent,
    Cluster,
    ClusterInfo,
    Leds,
    ManagedFile,
    Mount,
    Mpi,
    Network,
    Node,
    Packages,
    SecretRef,
    Share,
    Time,
    User,
    Wifi,
)

__all__ = [
    "SECRETS_FILE",
    "Agent",
    "Cluster",
    "ClusterInfo",
    "Leds",
    "ManagedFile",
    "Mount",
    "Mpi",
    "Network",
    "Node",
    "Packages",
    "SecretRef",
    "Share",
    "Time",
    "User",
    "Wifi",
    "load",
    "load_secrets",
]
