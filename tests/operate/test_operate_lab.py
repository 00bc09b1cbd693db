"""run, check, reboot and shutdown on lab nodes: real sshd, systemd and containers that power
off. The lab is the session's: every test leaves each node running and answering SSH."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from picl.lab import node as lab_nodes
from tests.conftest import SPEC, Lab

pytestmark = pytest.mark.lab

NODES = ("node0", "node1", "node2")
GITHUB_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnwqVu+4ARiHnIe2Zm0XqHLvvITD1vJKjWe2UL6RDeB gh"


class Day:
    """The session's lab, converged to the repository's spec, and picl run on it."""

    def __init__(self, lab: Lab, root: Path):
        self.lab = lab
        self.secrets = root / "secrets.toml"
        hashed = subprocess.run(["openssl", "passwd", "-6", "-salt", "pytest", "lab"],
                                capture_output=True, text=True, check=True).stdout.strip()
        self.secrets.write_text(f'wifi_psk = "not-a-real-psk"\nroot_password_hash = "{hashed}"\n')
        self.secrets.chmod(0o600)
        (root / "github").mkdir()
        (root / "github" / "flucifredi.keys").write_text(GITHUB_KEY + "\n")
        # Keys from a directory, not GitHub; a converge lock of this run's own.
        self.environ = {"PICL_GITHUB_URL": (root / "github").as_uri(),
                        "XDG_CACHE_HOME": str(root / "cache"), "PICL_LOCK_DIR": str(root / "lock")}

    def command(self, *args: str) -> tuple[list[str], dict[str, str]]:
        """(argv, environment) of `picl --lab ARGS` on this lab."""
        env = dict(os.environ, PICL_SPEC=str(SPEC), PICL_LAB_NAME=self.lab.name, **self.environ)
        env.pop("PICL_IN_LAB", None)
        argv = [sys.executable, "-c", "from picl.cli import main; main()", "--secrets",
                str(self.secrets), "--lab", *args]
        return argv, env

    def picl(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """`picl --lab ARGS` on this lab, with no terminal on stdin."""
        argv, env = self.command(*args)
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def boot_id(self, node: str) -> str:
        return self.lab.ssh(node, "cat /proc/sys/kernel/random/boot_id").stdout.strip()

    def all_up(self) -> None:
        """Every node on and answering, whatever a test left."""
        for node in NODES:
            self.lab.picl("lab", "start", node, check=True)


@pytest.fixture(scope="module")
def day(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Day]:
    """The lab with the cluster's user and /etc/hosts, as `picl apply` makes them."""
    converged = Day(lab, tmp_path_factory.mktemp("day"))
    result = converged.picl("apply", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    yield converged
    converged.all_up()


def _lines(text: str) -> list[str]:
    return [re.sub(r"\s+", " ", line).strip() for line in text.splitlines()]


def test_run_gives_each_node_s_own_answer(day: Day) -> None:
    result = day.picl("run", "--json", "--", "hostname")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is True and document["user"] == "federico"
    assert [(n["node"], n["stdout"], n["status"]) for n in document["nodes"]] == [
        (node, f"{node}\n", 0) for node in NODES]

    plain = day.picl("run", "--", "hostname")
    assert plain.returncode == 0
    assert sorted(line.split()[:2] for line in _lines(plain.stdout)) == [
        ["[OK]", node] for node in NODES]


def test_run_runs_as_the_cluster_s_user_and_folds_identical_output(day: Day) -> None:
    result = day.picl("run", "--inline", "--", "id -un; pwd")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("---------------\n", 1)[1] == (
        "node[0-2] (3)\n---------------\nfederico\n/home/federico\n")


def test_a_command_failing_on_one_node_fails_the_run_and_names_it(day: Day) -> None:
    result = day.picl("run", "--inline", "--", 'echo "on $(hostname)"; test "$(hostname)" != node1')
    assert result.returncode == 1
    lines = _lines(result.stdout)
    assert any(line.startswith("[FAILURE] node1 exit 1") for line in lines)
    assert sorted(line.split()[1] for line in lines if line.startswith("[OK]")) == ["node0", "node2"]
    assert "node1 (1)\n---------------\non node1\n" in result.stdout
    assert "picl run: failed on node1" in result.stderr


def test_a_node_without_the_user_fails_alone(day: Day) -> None:
    day.lab.ssh("node2", "usermod -l federico-away federico")
    try:
        result = day.picl("run", "--json", "--", "true")
    finally:
        day.lab.ssh("node2", "usermod -l federico federico-away")
    nodes = {n["node"]: n for n in json.loads(result.stdout)["nodes"]}
    assert result.returncode == 1
    assert nodes["node2"]["error"] == "no user federico on this node (`picl apply` creates it)"
    assert nodes["node0"]["ok"] and nodes["node1"]["ok"]


@contextmanager
def _powered_off(day: Day, node: str) -> Iterator[None]:
    day.lab.picl("lab", "kill", node, check=True)
    try:
        yield
    finally:
        day.lab.picl("lab", "start", node, check=True)


def test_a_node_without_power_is_a_failure_and_the_others_answer(day: Day) -> None:
    with _powered_off(day, "node2"):
        result = day.picl("run", "--timeout", "20", "--", "hostname")
        check = day.picl("check", "--json")
    assert result.returncode == 1
    lines = _lines(result.stdout)
    (failure,) = [line for line in lines if line.startswith("[FAILURE]")]
    # A board without power answers nothing: refused, timed out or no route, as the lab has it.
    assert failure.startswith("[FAILURE] node2 ssh: connect to host 10.1.10.242 port 22: ")
    assert check.returncode == 1  # unreachable is red
    nodes = {n["node"]: n for n in json.loads(check.stdout)["nodes"]}
    assert nodes["node2"]["level"] == "FAIL"
    assert [c["check"] for c in nodes["node2"]["checks"]] == ["ssh"]


@contextmanager
def _hung_sshd(day: Day, node: str) -> Iterator[None]:
    """The node's sshd stops answering: its kernel takes connections, nothing speaks on them."""
    listener = [
        p.pid for p in lab_nodes.processes(day.lab.name)
        if p.node == node and p.kind == "container"
        and b"[listener]" in Path(f"/proc/{p.pid}/cmdline").read_bytes()
    ]
    assert len(listener) == 1
    os.kill(listener[0], signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(listener[0], signal.SIGCONT)
        day.lab.wait_ssh(node)


def test_a_node_that_does_not_answer_in_time_is_a_failure_not_a_hang(day: Day) -> None:
    with _hung_sshd(day, "node2"):
        result = day.picl("run", "--timeout", "3", "--json", "--", "hostname")
    assert result.returncode == 1
    nodes = {n["node"]: n for n in json.loads(result.stdout)["nodes"]}
    assert (nodes["node2"]["status"], nodes["node2"]["error"]) == (None, "no answer within 3s")
    assert nodes["node0"]["ok"] and nodes["node1"]["ok"]


def test_a_command_that_outlives_the_timeout_is_stopped(day: Day) -> None:
    result = day.picl("run", "--node", "node1", "--timeout", "2", "--json", "--", "echo hi; sleep 60")
    assert result.returncode == 1
    (node,) = json.loads(result.stdout)["nodes"]
    assert (node["stdout"], node["error"]) == ("hi\n", "still running after 2s: stopped")


def _running(day: Day, command: str) -> int:
    """On how many nodes a process with exactly this command line runs."""
    return sum(day.lab.ssh(node, f"pgrep -fx {shlex.quote(command)}", check=False).returncode == 0
               for node in NODES)


def test_ctrl_c_stops_a_run_with_130_and_leaves_no_ssh_behind(day: Day) -> None:
    sleep = f"sleep 119.{os.getpid()}"  # this test's own: nothing else on the nodes runs it
    # The run's timeout far beyond the wait below: on a loaded machine, looking at three nodes
    # takes seconds, and a run that timed out would not be one that Ctrl-C stopped.
    argv, env = day.command("run", "--timeout", "120", "--", sleep)
    # SIGINT as a terminal's foreground job has it: a suite started in the background (`make
    # test &`, as CI may) passes it on ignored, and Python then never raises KeyboardInterrupt.
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the command runs on every node
            if _running(day, sleep) == len(NODES) or proc.poll() is not None:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert err.splitlines()[-1:] == ["picl: interrupted"] and "Traceback" not in err
    # Its ssh processes went with it, and the command with them on every node, long before
    # its own timeout (it ran on until then, with no terminal to tell it picl was gone).
    assert subprocess.run(["pgrep", "-f", f"^ssh .*{sleep}"]).returncode == 1
    deadline = time.monotonic() + 30
    while _running(day, sleep) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _running(day, sleep) == 0


def test_check_is_green_on_a_converged_lab(day: Day) -> None:
    for node in NODES[1:]:  # chrony, just installed, has had time to follow the primary
        day.lab.ssh(node, "chronyc waitsync 60 0 0 1")
    result = day.picl("check", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    levels = {(n["node"], c["check"]): c["level"] for n in document["nodes"] for c in n["checks"]}
    assert "FAIL" not in levels.values()
    assert all(levels[(node, "ssh")] == levels[(node, "primary")] == "OK" for node in NODES)
    # What a container cannot have is a warning that says why, not a failure.
    shares = {n["node"]: c for n in document["nodes"] for c in n["checks"] if c["check"] == "shares"}
    assert sorted(shares) == ["node1", "node2"]  # the primary serves the share, mounts none
    assert shares["node1"]["detail"] == (
        "/shared cannot be mounted here: no NFS in this kernel (systemd-nspawn container)")

    table = day.picl("check")
    assert table.returncode == 0
    assert _lines(table.stdout)[0].split() == [
        "node", "ssh", "primary", "clock", "temperature", "shares", "disk", "load"]


def test_check_is_red_for_a_share_that_could_be_mounted_and_is_not(day: Day) -> None:
    # node1 gets what a board's kernel has, an NFS module: now its share should be mounted.
    module = "/lib/modules/$(uname -r)/kernel/fs/nfs"
    day.lab.ssh("node1", f"mkdir -p {module} && touch {module}/nfs.ko.xz")
    try:
        result = day.picl("check", "--json")
    finally:
        day.lab.ssh("node1", "rm -r /lib/modules")
    assert result.returncode == 1
    nodes = {n["node"]: {c["check"]: c for c in n["checks"]} for n in
             json.loads(result.stdout)["nodes"]}
    assert nodes["node1"]["shares"]["level"] == "FAIL"
    assert nodes["node1"]["shares"]["detail"] == "/shared not mounted (10.1.10.240:/srv/shared)"
    assert nodes["node2"]["shares"]["level"] == "WARN"


def test_reboot_returns_once_the_node_is_back_on_a_new_boot(day: Day) -> None:
    before = {node: day.boot_id(node) for node in NODES}
    refused = day.picl("reboot", "--node", "node1")  # no terminal, no --yes
    assert refused.returncode == 1
    assert refused.stderr.strip() == "reboot: no terminal to confirm on; run with --yes"

    result = day.picl("reboot", "--node", "node1", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    events = [line.split(" ", 1)[1] for line in _lines(result.stdout)[:-1]]
    assert events[0] == "node1: rebooting"
    assert re.fullmatch(r"node1: back after [\d.]+s \(boot [0-9a-f]{8}\)", events[1])
    assert _lines(result.stdout)[-1] == "Reboot: 1 back, 0 failed"
    after = {node: day.boot_id(node) for node in NODES}
    assert after["node1"] != before["node1"]
    assert events[1].endswith(f"(boot {after['node1'][:8]})")
    assert (after["node0"], after["node2"]) == (before["node0"], before["node2"])


def _powered_off_at(day: Day, node: str) -> str:
    """When the lab saw the node's container exit by itself, last (its supervisor's log)."""
    log = (day.lab.blueprint.node(node).dir / lab_nodes.SUPERVISOR_LOG).read_text()
    return re.findall(r"^(\S+) \[\d+\] nspawn exited with status 0$", log, re.M)[-1]


def test_shutdown_powers_the_workers_off_before_the_primary(day: Day) -> None:
    try:
        result = day.picl("shutdown", "--yes")
        status = day.lab.picl("lab", "status", "--json")
        stopped = {node: _powered_off_at(day, node) for node in NODES}
    finally:
        day.all_up()
    assert result.returncode == 0, result.stdout + result.stderr
    events = [line.split(" ", 1)[1] for line in _lines(result.stdout)[:-1]]
    assert [e for e in events if "powering off" in e][-1] == "node0: powering off"
    primary_asked = events.index("node0: powering off")
    assert {e.split(":")[0] for e in events[:primary_asked] if ": off after" in e} == {
        "node1", "node2"}
    assert re.fullmatch(r"node0: off after [\d.]+s", events[-1])
    assert _lines(result.stdout)[-1] == "Shutdown: all nodes are off; the power can be cut"
    assert not any(n["running"] for n in json.loads(status.stdout)["nodes"])
    # The lab's own record (to the second): no worker's container outlived the primary's.
    assert max(stopped["node1"], stopped["node2"]) <= stopped["node0"]


def test_shutdown_leaves_the_primary_running_when_a_worker_will_not_power_off(day: Day) -> None:
    day.lab.ssh("node2", "systemctl mask poweroff.target")
    try:
        result = day.picl("shutdown", "--yes")
        primary_up = day.lab.ssh("node0", "true", check=False).returncode == 0
    finally:
        day.lab.ssh("node2", "systemctl unmask poweroff.target")
        day.all_up()
    assert result.returncode == 1
    events = [line.split(" ", 1)[1] for line in _lines(result.stdout)[:-1]]
    assert any(e.startswith("node2: failed (refused: ") for e in events)
    assert any(e.startswith("node1: off after") for e in events)
    assert events[-1] == "node0: left running (node2 still up: the primary goes last)"
    assert primary_up
    assert _lines(result.stdout)[-1] == "Shutdown: 2 failed; do not cut the power yet"
