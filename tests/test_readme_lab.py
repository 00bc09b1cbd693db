"""The README, followed on the lab as a new user would: its commands, verbatim, from a fresh
clone. The commands (and, where a sample shows it, their output) are read from the README
itself, so the test breaks when the README drifts from what picl does."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, Lab, running_lab, session_lab_name

pytestmark = pytest.mark.lab

README = REPO / "README.md"


def sample(marker: str) -> list[tuple[str, list[str]]]:
    """The fenced block that follows the README's line holding `marker`: its `$ COMMAND` lines,
    each with the lines shown after it."""
    text = README.read_text()
    start = text.index(marker)
    block = text[text.index("```", start):].split("\n", 1)[1].split("```", 1)[0]
    commands: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif commands and line.strip():
            commands[-1][1].append(line)
    assert commands, f"no `$ COMMAND` lines in the README's block after {marker!r}"
    return commands


def output(lines: list[str]) -> list[str]:
    """Lines as compared: durations as `N.Ns`, in sorted order (nodes answer in any order)."""
    return sorted(re.sub(r"\d+\.\d+s\b", "N.Ns", line).rstrip() for line in lines)


@dataclass
class Clone:
    """A clone of a cluster's repository (this one's cluster.toml), where the README's commands
    run as typed: `picl` on PATH, the lab named by PICL_LAB_NAME."""

    root: Path
    environ: dict[str, str]
    lab: Lab

    def sh(self, command: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", "-c", command], cwd=self.root, env=self.environ,
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def clone(lab_host: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clone]:
    """A fresh clone of a cluster's repository, and a lab of its own."""
    root = tmp_path_factory.mktemp("clone")
    (root / "cluster.toml").write_text((REPO / "cluster.toml").read_text())
    (root / ".gitignore").write_text("secrets.toml\n")  # no secrets yet: a new user has none
    name = session_lab_name("readme")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PICL_", "GIT_"))}
    environ.update(PATH=f"{Path(sys.executable).parent}:{environ.get('PATH', '/usr/bin:/bin')}",
                   PICL_LAB_NAME=name, GIT_AUTHOR_NAME="Federico",
                   GIT_AUTHOR_EMAIL="federico@example.org", GIT_COMMITTER_NAME="Federico",
                   GIT_COMMITTER_EMAIL="federico@example.org")
    for command in ("git init -q -b main", "git add -A", "git commit -q -m 'the cluster'"):
        assert subprocess.run(["sh", "-c", command], cwd=root, env=environ).returncode == 0
    with running_lab(name, root / "cluster.toml") as lab:
        yield Clone(root, environ, lab)


FIRST_PUSH = "a lab test runs these lines"
WAIT = 180.0  # seconds for the agent to apply a push (bounded, never asserted on time)


@pytest.fixture(scope="module")
def pushed(clone: Clone) -> dict[str, subprocess.CompletedProcess[str]]:
    """The README's first push, line by line, until the agent has applied it; each line's run."""
    ran = {}
    for command, _ in sample(FIRST_PUSH):
        ran[command] = result = clone.sh(command)
        assert result.returncode == 0, f"$ {command}\n{result.stdout}{result.stderr}"
    head = clone.sh("git rev-parse HEAD").stdout.strip()
    deadline = time.monotonic() + WAIT
    while True:
        status = json.loads(clone.sh("picl --lab status --json").stdout)
        if status["state"] == "ready" and status["revision"]["applied"] == head:
            return ran
        assert time.monotonic() < deadline, f"not applied within {WAIT:.0f}s:\n{status}"
        time.sleep(0.5)


def test_the_first_push_goes_as_the_readme_says(
        pushed: dict[str, subprocess.CompletedProcess[str]]) -> None:
    (remote,) = [c for c in pushed if c.startswith("git remote add cluster ")]
    assert f"  {remote}\n" in pushed["picl --lab agent install"].stdout  # what install says


def test_the_status_reads_as_the_readme_shows(clone: Clone, pushed: object) -> None:
    ((command, shown),) = sample("the push is applied")
    printed = clone.sh(command).stdout.splitlines()
    assert [line.split()[0] for line in printed] == [line.split()[0] for line in shown]


def test_a_node_that_is_off_fails_the_run_as_the_readme_shows(clone: Clone,
                                                              pushed: object) -> None:
    try:
        for command, shown in sample("A node that is off"):
            result = clone.sh(command)
            printed = (result.stdout + result.stderr).splitlines()
            assert output(printed) == output(shown), f"$ {command}"
    finally:
        assert clone.sh("picl lab start node2").returncode == 0


def test_only_the_pushers_group_may_push(clone: Clone, pushed: object) -> None:
    """The protection: a user of the primary outside the group `picl` is refused."""
    clone.lab.ssh("node0", "id mallory >/dev/null 2>&1 || useradd -m mallory")
    url = "ssh://mallory@10.1.10.240/srv/picl/cluster.git"
    refused = clone.sh(f"picl lab exec -- git push {url} main:refs/heads/mallory")
    assert refused.returncode != 0
    assert "unable to create temporary object directory" in refused.stderr  # not writable
    clone.lab.ssh("node0", "usermod -a -G picl mallory")  # as the README says to add an admin
    allowed = clone.sh(f"picl lab exec -- git push {url} main:refs/heads/mallory")
    assert allowed.returncode == 0, allowed.stderr
