"""`picl status`, `picl history` and `picl agent reconcile` on the primary itself.

The agent's files are made under PICL_AGENT_ROOT; from the operator's machine the same
commands read them over SSH (tested on the lab).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from picl.reconciler import status as st
from picl.reconciler.paths import Paths
from picl.reconciler.status import NodeStatus, Result, Status
from picl.reconciler.store import Store

A = "0123456789ab" + "c" * 28
T0 = 1_800_000_000.0


def picl(root: Path, *args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICL_")}
    env.update(environ, PICL_AGENT_ROOT=str(root))
    return subprocess.run([sys.executable, "-c", "from picl.cli import main; main()", *args],
                          env=env, cwd=root, capture_output=True, text=True, timeout=60)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    status = st.observed(st.began(Status(cluster="arrakis", branch="main"), "push", T0), A,
                         attempted=True)
    nodes = (NodeStatus("node0", "converged", ("~ hosts",)),
             NodeStatus("node1", "unreachable", error="unreachable: no route to host"))
    status = st.finished(status, Result(A, "enforce", nodes, applied=True), T0 + 2, T0 + 300)
    Store(Paths(tmp_path)).save(status)
    return tmp_path


def test_status(root: Path) -> None:
    result = picl(root, "status")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == ("arrakis (this machine): Not ready — main@sha1:0123456789ab: "
                        "node1 (unreachable)")
    assert any(line.split()[:3] == ["Ready", "False", "NodesUnreachable"] for line in lines)
    assert any(line.split()[:2] == ["node0", "converged"] and "1 change applied" in line
               for line in lines)
    assert any(line.split()[:2] == ["node1", "unreachable"] and "no route to host" in line
               for line in lines)


def test_status_json(root: Path) -> None:
    result = picl(root, "status", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["state"] == "not-ready"
    assert document["where"] == "this machine"
    assert document["revision"] == {"observed": A, "attempted": A, "applied": None}
    ready = next(c for c in document["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NodesUnreachable")
    assert [n["state"] for n in document["nodes"]] == ["converged", "unreachable"]


def test_history(root: Path) -> None:
    result = picl(root, "history", "--json")
    assert result.returncode == 0, result.stderr
    [cycle] = json.loads(result.stdout)["cycles"]
    assert (cycle["number"], cycle["trigger"], cycle["outcome"]) == (1, "push", "retrying")
    text = picl(root, "history").stdout
    assert "retrying" in text and "main@sha1:0123456789ab" in text and "push:" in text


def test_reconcile_asks_the_agent(root: Path) -> None:
    result = picl(root, "agent", "reconcile", "--no-wait")
    assert result.returncode == 0, result.stderr
    assert (Paths(root).control / "reconcile").is_file()


def test_no_agent_anywhere(tmp_path: Path) -> None:
    (tmp_path / "cluster.toml").write_text("")
    result = picl(tmp_path, "status")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("lab", "says"), [
    (False, "no agent was installed on this machine"),
    (True, "install it there with `picl --lab agent install`, then `picl --lab status`"),
])
def test_agent_run_refuses_where_no_agent_was_installed(tmp_path: Path, lab: bool,
                                                        says: str) -> None:
    # Inside a lab (PICL_IN_LAB) as `picl --lab agent run` gets there.
    environ = {"PICL_IN_LAB": "x"} if lab else {}
    result = picl(tmp_path, *(["--lab"] * lab), "agent", "run", **environ)
    assert result.returncode == 1
    assert says in result.stderr
    assert not (tmp_path / "var").exists()  # no status, no checkout written here
