"""Fixtures for end-to-end tests: a running lab of the repository's cluster.toml.

`lab` (session scope) brings the lab up once for the whole run and removes it at the end.
Tests reach its nodes as an operator would: real ssh, the lab's key, host keys checked.

    def test_something(lab):
        assert lab.ssh("node0", "hostname").stdout.strip() == "node0"
        lab.picl("--lab", "plan")        # picl itself, pointed at the lab

Labs made by tests are named `pytest-PID[-...]` after the test session's process: a lab someone
brought up by hand (`picl lab up`) and the labs of another test session running at the same time
are left alone; those of sessions that died are removed when the next session starts.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from picl.errors import PiclError

if TYPE_CHECKING:
    from picl.lab import Blueprint, Cards
    from picl.spec import Cluster

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "cluster.toml"
SESSION = f"pytest-{os.getpid()}"
LAB_NAME = SESSION


def require_lab_host() -> None:
    """Skip unless this machine can run a lab (Linux, root); missing tools are a failure."""
    if platform.system() != "Linux" or os.geteuid() != 0:
        pytest.skip("the lab needs Linux and root")


@dataclass
class Lab:
    """A running lab, and the ways a test reaches into it."""

    name: str
    spec: Path

    @property
    def cluster(self) -> Cluster:
        """The lab's spec, loaded (without secrets)."""
        from picl.spec import load

        return load(self.spec)

    @property
    def blueprint(self) -> Blueprint:
        """What the lab was built as: its nodes, addresses, namespaces, directories."""
        from picl.lab import find

        return find(self.name)

    def address(self, node: str) -> str:
        return self.blueprint.node(node).address

    def ssh(
        self, node: str, command: str, *, check: bool = True, timeout: float = 120,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command on a node as root over SSH (from inside the lab's network),
        `input` on its stdin."""
        from picl.lab import ssh_argv

        proc = subprocess.run(
            ssh_argv(self.name, node, [command], interactive=False),
            capture_output=True,
            text=True,
            timeout=timeout,
            **({"input": input} if input is not None else {"stdin": subprocess.DEVNULL}),
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{node}: `{command}` exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def exec(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the lab's network, with `ssh` set up for the nodes."""
        from picl.lab import exec_argv

        command, env = exec_argv(self.name, argv)
        return subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout, check=check
        )

    def picl(
        self, *args: str, check: bool = False, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run the picl CLI on this lab's spec, with this lab's name (add "--lab" to enter it)."""
        return picl(*args, spec=self.spec, lab_name=self.name, check=check, timeout=timeout)

    def wait_ssh(self, node: str, timeout: float = 120) -> None:
        """Wait (bounded, never asserted on time) until a node answers SSH again."""
        deadline = time.monotonic() + timeout
        while self.ssh(node, "true", check=False, timeout=30).returncode != 0:
            if time.monotonic() > deadline:
                raise AssertionError(f"{node} did not answer SSH within {timeout:.0f}s")
            time.sleep(1)


def picl(
    *args: str,
    spec: Path | None = SPEC,
    lab_name: str | None = None,
    check: bool = False,
    timeout: float = 600,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the installed picl CLI (the same interpreter as the tests) and capture its output.

    `spec` None: picl's default, cluster.toml in `cwd`.
    """
    env = dict(os.environ)
    for name in ("PICL_IN_LAB", "PICL_SPEC", "PICL_LAB_NAME"):
        env.pop(name, None)
    if spec:
        env["PICL_SPEC"] = str(spec)
    if lab_name:
        env["PICL_LAB_NAME"] = lab_name
    argv = [sys.executable, "-c", "from picl.cli import main; main()", *args]
    return subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=timeout, check=check, cwd=cwd
    )


def session_lab_name(suffix: str) -> str:
    """A lab name of this test session's own (see the module's docstring)."""
    return f"{SESSION}-{suffix}"


@contextmanager
def running_lab(
    name: str, spec: Path = SPEC, cards: Cards | None = None, uplink: bool = False
) -> Iterator[Lab]:
    """A lab of `spec` named `name`, up for the `with` block and removed after it.

    `cards`: the releases and architectures of its nodes (`lab up --os/--arch`); `uplink`: its
    nodes get a second interface, like a Wi-Fi with client isolation.
    """
    from picl import lab as labs
    from picl.spec import load

    labs.up(load(spec), name, cards=cards, uplink=uplink, spec=spec)
    try:
        yield Lab(name=name, spec=spec)
    finally:
        labs.down(name)


def suite_releases(items: Sequence[pytest.Item]) -> set[str]:
    """The releases the session's lab tests boot: bookworm, and those a module marks `releases`."""
    named = {r for item in items for mark in item.iter_markers("releases") for r in mark.args}
    return {"bookworm"} | named


@pytest.fixture(scope="session")
def lab_host(request: pytest.FixtureRequest) -> None:
    """This machine can run labs; labs of test sessions that died are removed first, and every
    image the session's tests boot (and the VM disk, for VM nodes) is built, at the same time,
    before the first lab comes up."""
    require_lab_host()
    from picl import lab as labs
    from picl.lab import mirror, pios, vmimage

    items = request.session.items
    wanted = [(r, pios.native_arch()) for r in suite_releases(items)]
    vms = [("bookworm", pios.native_arch())] if any(i.get_closest_marker("vm") for i in items) \
        else []
    vmimage.ensure_with_images(wanted, vms, mirror.configured(),
                               lambda m: print(m, file=sys.stderr))

    for name in labs.labs_on_host():
        match = re.fullmatch(r"pytest-(\d+)(?:-[a-z0-9-]+)?", name)
        if match and not Path(f"/proc/{match[1]}").exists():
            with suppress(PiclError):  # saved by another version of picl: left to it
                labs.down(name)


@pytest.fixture(scope="session")
def lab(lab_host: None) -> Iterator[Lab]:
    """A running lab of the repository's cluster.toml, shared by the whole test session."""
    with running_lab(LAB_NAME) as running:
        yield running
