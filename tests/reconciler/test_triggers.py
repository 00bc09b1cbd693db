"""What wakes the agent: events gathered into one cycle, a push seen, a node coming back."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from picl.reconciler import control
from picl.reconciler.paths import Paths
from picl.reconciler.triggers import NodeWatcher, Triggers, is_ref_change, watch_files
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


def test_a_silent_node_that_answers_again_came_back() -> None:
    alive = {"10.0.0.1": True, "10.0.0.2": True}
    port = {"10.0.0.1": True, "10.0.0.2": True}
    watcher = NodeWatcher(Triggers(), threading.Event(), alive=alive.__getitem__,
                          port_open=port.__getitem__)
    watcher.watch([("node1", "10.0.0.1"), ("node2", "10.0.0.2")])
    assert watcher.look() == []  # answering all along: nothing came back
    alive["10.0.0.1"] = False
    assert watcher.look() == []
    alive["10.0.0.1"] = True
    assert watcher.look() == ["node1"]
    assert watcher.look() == []


def test_a_node_is_back_once_ssh_answers() -> None:
    stop = threading.Event()
    alive = {"10.0.0.1": False}
    port = {"10.0.0.1": False}
    watcher = NodeWatcher(Triggers(), stop, alive=alive.__getitem__, port_open=port.__getitem__)
    watcher.watch([("node1", "10.0.0.1")])
    watcher.look()
    alive["10.0.0.1"] = True
    stop.set()  # ping answers but sshd is not up: not back yet (and not waited for)
    assert watcher.look() == []
    stop.clear()
    port["10.0.0.1"] = True
    assert watcher.look() == ["node1"]

