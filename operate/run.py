"""`picl run`: a command on every node at once, as the cluster's user (what `parallel-ssh` does).

The cluster's user is the spec's first personal user; the command runs through
`transport.remote.as_user`, so a node without that user fails alone, saying so.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable

from picl.spec import Cluster, Node, User
from picl.transport.connection import Connection
from picl.transport.remote import Reply, as_user, ask

RUN_TIMEOUT = 60.0  # seconds for a `picl run` command, connection included


def cluster_user(cluster: Cluster) -> User | None:
    """The cluster's user: the spec's first personal user (uid >= 1000), if any."""
    return next((u for u in cluster.users if u.uid >= 1000), None)



def run(
    cluster: Cluster, nodes: Iterable[Node], command: str, connection: Connection,
    timeout: float = RUN_TIMEOUT,
) -> Generator[Reply, None, None]:
    """`picl run`: the command on each node as the cluster's user, replies as they come."""
    user = cluster_user(cluster)
    remote = as_user(user.name if user else None, command, timeout)
    commands = {n.name: (str(n.address), remote) for n in nodes}
    for reply in ask(commands, connection, timeout):
        if reply.error == "no such user on this node" and user:
            reply.error = f"no user {user.name} on this node (`picl apply` creates it)"
        yield reply
