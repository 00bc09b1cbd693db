"""The README, followed on the lab as a new user would: its commands, verbatim, from a fresh
clone. The commands (and, where a sample shows it, their output) are read from the README
itself, so the test breaks when the README drifts from what picl does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, running_lab, session_lab_name

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

    def sh(self, command: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", "-c", command], cwd=self.root, env=self.environ,
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def clone(lab_host: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clone]:
    """A fresh clone with its (lab-only) secrets beside the spec, on a lab of its own."""
    root = tmp_path_factory.mktemp("clone")
    (root / "cluster.toml").write_text((REPO / "cluster.toml").read_text())
    hashed = subprocess.run(["openssl", "passwd", "-6", "-salt", "pytest", "lab"],
                            capture_output=True, text=True, check=True).stdout.strip()
    (root / "secrets.toml").write_text(f'wifi_psk = "lab-only"\nroot_password_hash = "{hashed}"\n')
    (root / "secrets.toml").chmod(0o600)
    (root / ".gitignore").write_text("secrets.toml\n")
    name = session_lab_name("readme")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PICL_", "GIT_"))}
    environ.update(PATH=f"{Path(sys.executable).parent}:{environ.get('PATH', '/usr/bin:/bin')}",
                   PICL_LAB_NAME=name, GIT_AUTHOR_NAME="Federico",
                   GIT_AUTHOR_EMAIL="federico@example.org", GIT_COMMITTER_NAME="Federico",
                   GIT_COMMITTER_EMAIL="federico@example.org")
    clone = Clone(root, environ)
    for command in ("git init -q -b main", "git add -A", "git commit -q -m 'the cluster'"):
        assert clone.sh(command).returncode == 0
    with running_lab(name, root / "cluster.toml"):
        applied = clone.sh("picl --lab apply --yes")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        yield clone


def test_a_node_that_is_off_fails_the_run_as_the_readme_shows(clone: Clone) -> None:
    try:
        for command, shown in sample("A node that is off"):
            result = clone.sh(command)
            printed = (result.stdout + result.stderr).splitlines()
            assert output(printed) == output(shown), f"$ {command}"
    finally:
        assert clone.sh("picl lab start node2").returncode == 0
