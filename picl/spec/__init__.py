"""The spec: cluster.toml as validated models. Imports nothing else of picl but its errors."""

from picl.spec.loader import SECRETS_FILE, cluster_name, load, load_secrets, primary_node
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
    "cluster_name",
    "load",
    "load_secrets",
    "primary_node",
]
