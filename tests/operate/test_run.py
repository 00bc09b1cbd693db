"""`picl run`'s choice of user, as data."""

from __future__ import annotations

from picl.operate.run import cluster_user
from picl.spec import Cluster


def test_the_cluster_user_is_the_first_personal_user(cluster: Cluster) -> None:
    user = cluster_user(cluster)
    assert user is not None and user.name == "federico"
    root_only = cluster.model_copy(update={"users": [u for u in cluster.users if u.uid == 0]})
    assert cluster_user(root_only) is None
