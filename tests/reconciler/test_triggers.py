"""What wakes the agent: events gathered into one cycle, a push seen, a node coming back."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from picl.reconciler import control
from picl.reconciler.agent import PERSIST
from picl.reconciler.paths import Paths
from picl.reconciler.triggers import (
    Follower,
    NodeWatcher,
    Session,
    Triggers,
    came_back,
    is_ref_change,
    watch_files,
)
from picl.spec.models import INTERVAL_SECONDS
from picl.transport.connection import Connection
from tests.reconciler.conftest import Clone

REPO = Path("/srv/picl/cluster.git")
REFS = [
    ("/srv/picl/cluster.git/refs/heads/main", True),
    ("/srv/picl/cluster.git/refs/heads/feature/x", True),
    ("/srv/picl/cluster.git/refs/heads/main.lock", False),
    ("/srv/picl/cluster.git/packed-refs", True),
    ("/srv/picl/cluster.git/objects/ab/cdef", False),
    ("/srv/picl/cluster.git/refs/tags/v1", False),
    ("/srv/picl/cluster.git/HEAD", False),
    ("/elsewhere/refs/heads/main", False),
]


@pytest.mark.parametrize(("path", "wanted"), REFS)
def test_is_ref_change(path: str, wanted: bool) -> None:
    assert is_ref_change(path, REPO) is wanted


def test_reasons_arriving_together_make_one_wake_up() -> None:
    triggers = Triggers()
    for reason in ("push", "push", "requested"):
        triggers.put(reason)
    assert triggers.take(timeout=0) == {"push", "requested"}
    assert triggers.take(timeout=0) == set()


def test_a_reason_wakes_a_waiting_loop() -> None:
    triggers = Triggers()
    threading.Timer(0.05, triggers.put, args=("node1 came back",)).start()
    assert triggers.take(timeout=60) == {"node1 came back"}


def test_a_push_and_a_request_are_seen(paths: Paths, clone: Clone) -> None:
    triggers = Triggers()
    observer = watch_files(paths.repository, paths.control, triggers)
    try:
        clone.commit({"cluster.toml": "one\n"}, "first")
        clone.push()
        assert "push" in triggers.take(timeout=30)
        subprocess.run(["sh", "-c", control.reconcile_command(paths.control)], check=True)
        assert "requested" in triggers.take(timeout=30)
        control.take_reconcile_request(paths.control)  # the agent takes it: no new request
        subprocess.run(["sh", "-c", control.suspend_command(paths.control, "me")], check=True)
        assert triggers.take(timeout=30) == {"control"}
    finally:
        observer.stop()


# (boot id of the last session, boot id now, a time without a session before) -> came back?
RETURNS = [
    (None, "b1", False, False),  # first seen, reachable from the start
    (None, "b1", True, True),  # out of reach at first, now up
    ("b1", "b1", True, False),  # a blip on the wire: same boot
    ("b1", "b2", True, True),  # rebooted (or lost power)
    ("b1", "b2", False, True),  # rebooted between two looks
]


@pytest.mark.parametrize(("known", "boot", "lost", "back"), RETURNS)
def test_came_back(known: str | None, boot: str, lost: bool, back: bool) -> None:
    assert came_back(known, boot, lost) is back


class Node(Session):
    """A node as its sessions see it: boot ids in turn (None: out of reach)."""

    def __init__(self, boots: list[str | None]):
        self.boots = boots
        self.ended = threading.Event()

    def open(self) -> str | None:
        if not self.boots:
            self.ended.wait()  # nothing more: out of reach until closed
            return None
        return self.boots.pop(0)

    def wait(self) -> None:  # each session ends at once: the node goes away again
        return

    def close(self) -> None:
        self.ended.set()


def test_a_follower_says_when_its_node_came_back() -> None:
    triggers = Triggers()
    follower = Follower("node1", Node(["b1", "b1", None, "b2"]), triggers)
    follower.start()
    try:
        assert triggers.take(timeout=120) == {"node1 came back"}
    finally:
        follower.close()
    follower.join(timeout=60)
    assert not follower.is_alive()


def test_the_watcher_follows_the_nodes_of_the_spec() -> None:
    made: list[str] = []

    def session(address: str) -> Session:
        made.append(address)
        return Node([])

    watcher = NodeWatcher(Triggers(), connection=None, session=session)  # type: ignore[arg-type]
    watcher.watch([("node1", "10.0.0.1"), ("node2", "10.0.0.2")])
    watcher.watch([("node1", "10.0.0.1"), ("node3", "10.0.0.3")])
    assert sorted(made) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert sorted(name for name, _ in watcher.followers) == ["node1", "node3"]
    watcher.close()
    assert watcher.followers == {}


def test_a_node_is_followed_over_its_shared_connection(tmp_path: Path) -> None:
    """The session that follows a node holds its shared connection open: a cycle reads the
    node over it, without a handshake of its own."""
    argv = Session(Connection(control=tmp_path / "ssh"), "10.0.0.1").argv
    assert f"ControlPath={tmp_path / 'ssh'}/%C" in argv
    assert INTERVAL_SECONDS[1] < PERSIST  # and outlives the longest interval
