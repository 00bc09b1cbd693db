"""The agent on lab nodes, end to end: install it, push to it, break things, and watch.

A lab of its own, in order: `picl --lab apply`, `picl --lab agent install`, a first push (as
the spec's user, federico, as every push here), then each test pushes
or drifts something and waits (bounded, never asserted on time) for the agent's status on the
primary to say what happened; the nodes are then checked as they are.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from picl.deploy.commands import apt_install
from picl.reconciler.leds.frames import PATTERNS
from tests.conftest import SPEC, Lab, picl, running_lab, session_lab_name
from tests.reconciler.conftest import keygen

pytestmark = pytest.mark.lab

URL = "ssh://federico@10.1.10.240/srv/picl/cluster.git"  # the spec's user pushes
IDENTITY = ["-c", "user.name=Federico", "-c", "user.email=federico@example.org"]
WAIT = 180.0  # seconds for what the agent does in a cycle or two (a first converge, a boot)


def lab_spec(interval: str = "15s", mode: str = "enforce", shell: str = "/bin/bash",
             signed_by: str = "", upstream: str = "") -> str:
    """The reference cluster without GitHub keys (no uplink in the lab), with these settings."""
    text = "\n".join(line for line in SPEC.read_text().splitlines()
                     if not line.startswith("github = "))
    text = text.replace('interval = "5m"', f'interval = "{interval}"')
    text = text.replace('mode = "enforce"', f'mode = "{mode}"')
    text = text.replace('shell = "/bin/bash"', f'shell = "{shell}"')
    if signed_by:
        text += f'\nsigned_by = ["{signed_by}"]\n'
    if upstream:
        text += f'\nupstream = "{upstream}"\n'
    return text + "\n"


class Cluster:
    """The operator's side: a clone of the cluster's repository, the agent seen over SSH."""

    def __init__(self, lab: Lab, root: Path):
        self.lab = lab
        self.root = root
        self.repo = root / "repo"
        self.repo.mkdir()
        self.git("init", "-q", "-b", "main")
        self.secrets = root / "secrets.toml"
        hashed = subprocess.run(["openssl", "passwd", "-6", "-salt", "pytest", "lab"],
                                capture_output=True, text=True, check=True).stdout.strip()
        self.secrets.write_text(f'wifi_psk = "not-a-real-psk"\nroot_password_hash = "{hashed}"\n')
        self.secrets.chmod(0o600)

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *IDENTITY, *args], cwd=self.repo, check=True,
                              capture_output=True, text=True).stdout.strip()

    def commit(self, spec: str, message: str, key: Path | None = None) -> str:
        (self.repo / "cluster.toml").write_text(spec)
        self.git("add", "cluster.toml")
        sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}", "commit", "-S"] \
            if key else ["commit"]
        self.git(*sign, "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    def push(self, force: bool = False, timeout: float = 120) -> None:
        self.lab.exec(["git", "-C", str(self.repo), "push", "-q", *(["--force"] * force),
                       URL, "HEAD:main"], timeout=timeout)

    def picl(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return self.lab.picl("--secrets", str(self.secrets), "--lab", *args, timeout=timeout)

    def in_repo(self, *args: str) -> subprocess.CompletedProcess[str]:
        """picl as typed in the clone: its cluster.toml, no secrets.toml beside it."""
        return picl(*args, spec=None, lab_name=self.lab.name, cwd=self.repo)

    def status(self) -> dict[str, Any]:
        result = self.picl("status", "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def history(self) -> list[dict[str, Any]]:
        result = self.picl("history", "--json", "--last", "100")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["cycles"]

    def wait(self, what: str, done: Callable[[dict[str, Any]], bool],
             timeout: float = WAIT) -> dict[str, Any]:
        """The agent's status once `done` holds (bounded: failing with the last status)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if done(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"not {what} within {timeout:.0f}s; status:\n"
                                     + json.dumps(status, indent=1))
            time.sleep(0.5)

    def applied(self, sha: str, timeout: float = WAIT) -> dict[str, Any]:
        return self.wait(f"applied {sha[:12]}", lambda s: s["revision"]["applied"] == sha
                         and s["state"] == "ready", timeout)

    def ssh(self, node: str, command: str, check: bool = True) -> str:
        return self.lab.ssh(node, command, check=check).stdout


def condition(status: dict[str, Any], kind: str) -> tuple[str, str, str]:
    found = [c for c in status["conditions"] if c["type"] == kind]
    return (found[0]["status"], found[0]["reason"], found[0]["message"]) if found \
        else ("Unknown", "", "")


def shells(cluster: Cluster) -> set[str]:
    return {cluster.ssh(n, "getent passwd federico | cut -d: -f7").strip()
            for n in ("node0", "node1", "node2")}


@pytest.fixture(scope="module")
def cluster(lab_host: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("agent")
    spec = root / "cluster.toml"
    spec.write_text(lab_spec())
    with running_lab(session_lab_name("agent"), spec) as lab:
        cluster = Cluster(lab, root)
        early = cluster.picl("agent", "install")  # nobody to push yet: picl apply makes them
        assert early.returncode == 1
        assert "node0 has no user federico yet" in early.stderr
        assert "`picl apply` first" in early.stderr
        applied = cluster.picl("apply", "--yes")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        installed = cluster.picl("agent", "install")
        assert installed.returncode == 0, installed.stdout + installed.stderr
        assert f"git remote add cluster {URL}" in installed.stdout
        yield cluster


@pytest.fixture(scope="module")
def first(cluster: Cluster) -> str:
    """The first push, converged: the cluster as the spec says."""
    waiting = cluster.wait("waiting for a first push",
                           lambda s: condition(s, "Ready")[1] == "NoRevision")
    assert waiting["cluster"] == "arrakis"  # named from the spec installed, before any push
    assert [c["trigger"] for c in cluster.history()] == ["install"]
    sha = cluster.commit(lab_spec(), "the reference cluster")
    cluster.push()
    cluster.applied(sha)
    return sha


def test_the_agent_runs_on_the_primary(cluster: Cluster) -> None:
    assert cluster.ssh("node0", "systemctl is-enabled picl-agent; systemctl is-active "
                                "picl-agent").split() == ["enabled", "active"]
    assert cluster.ssh("node0", "stat -c %a /etc/picl/secrets.toml").strip() == "600"
    # Installed offline: the venv's picl, from the wheelhouse copied over.
    assert cluster.ssh("node0", "/usr/local/bin/picl --version").startswith("picl")
    assert cluster.ssh("node1", "grep -c picl-agent@ /root/.ssh/authorized_keys").strip() == "1"


def test_a_push_converges_every_node(cluster: Cluster, first: str) -> None:
    sha = cluster.commit(lab_spec(shell="/bin/sh"), "federico: /bin/sh")
    cluster.push()
    status = cluster.applied(sha)
    assert shells(cluster) == {"/bin/sh"}
    assert [n["state"] for n in status["nodes"]] == ["converged"] * 3
    assert condition(status, "Ready")[:2] == ("True", "ReconciliationSucceeded")
    (applied,) = [c for c in cluster.history() if c["revision"] == sha and c["outcome"] == "applied"]
    assert applied["trigger"] == "push"
    record = json.loads(cluster.ssh("node0", "cat /run/picl/leds.json"))
    assert record["nodes"] == ["converged"] * 3


def test_a_cycle_opens_no_ssh_connection_to_a_node_it_reached(cluster: Cluster,
                                                              first: str) -> None:
    """Reading, applying and painting go over the connections the agent holds open: a
    handshake per node per cycle would cost a Pi 3 primary more CPU than the plan itself."""
    # The agent is on 10.1.10.240; what sshd on node1 accepted from there: each connection.
    count = "journalctl -o cat -t sshd | grep -c 'Accepted publickey for .* from 10.1.10.240 '"
    assert cluster.picl("agent", "reconcile").returncode == 0
    before = int(cluster.ssh("node1", count))
    again = cluster.picl("agent", "reconcile")
    assert again.returncode == 0, again.stdout + again.stderr
    assert int(cluster.ssh("node1", count)) == before


def test_an_invalid_spec_stalls_and_the_next_good_commit_recovers(cluster: Cluster,
                                                                 first: str) -> None:
    applied = cluster.status()["revision"]["applied"]
    bad = cluster.commit(lab_spec(shell="/bin/bash").replace("uid = 1000", 'uid = "one"'),
                         "a typo")
    # Pushed and watched from the clone holding the bad spec: lab commands need the lab, and
    # status the primary's record, not a valid spec, nor secrets.
    pushed = cluster.in_repo("lab", "exec", "--", "git", "push", "-q", URL, "HEAD:main")
    assert (pushed.returncode, pushed.stderr) == (0, "")
    shown = cluster.in_repo("--lab", "status")
    assert (shown.returncode, shown.stderr) == (0, ""), shown.stderr
    status = cluster.wait("stalled", lambda s: s["revision"]["observed"] == bad
                          and s["state"] == "stalled")
    stalled, reason, message = condition(status, "Stalled")
    assert (stalled, reason) == ("True", "InvalidSpec")
    assert "cluster.toml:" in message and "users[0].uid" in message
    assert status["revision"]["applied"] == applied  # nothing applied
    assert shells(cluster) == {"/bin/sh"}  # the last good state kept
    good = cluster.commit(lab_spec(shell="/bin/bash"), "fixed")
    cluster.push()
    cluster.applied(good)
    assert shells(cluster) == {"/bin/bash"}


def test_a_spec_that_is_not_toml_still_finds_its_lab_and_its_agent(cluster: Cluster,
                                                                   first: str) -> None:
    spec = cluster.lab.spec
    kept = spec.read_text()
    spec.write_text(kept.replace('name = "arrakis"', 'name = "arrakis'))
    try:
        # No lab name given: the lab is the one built from this file, the primary its record.
        ran = picl("lab", "exec", "--", "true", spec=spec)
        assert (ran.returncode, ran.stderr) == (0, "")
        shown = picl("--lab", "status", "--json", spec=spec)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["where"] == "node0"
    finally:
        spec.write_text(kept)


def test_only_signed_commits_apply_once_signed_by_is_set(cluster: Cluster, first: str) -> None:
    alice = keygen(cluster.root / "alice", "alice@laptop")
    keygen(cluster.root / "mallory", "mallory")
    signed = cluster.commit(lab_spec(signed_by=alice), "sign from now on",
                            key=cluster.root / "alice")
    cluster.push()
    cluster.applied(signed)
    for key in (None, cluster.root / "mallory"):
        refused = cluster.commit(lab_spec(signed_by=alice, shell="/bin/sh"), "sneaky", key=key)
        cluster.push()
        status = cluster.wait("refused", lambda s, r=refused: s["revision"]["observed"] == r
                              and s["state"] == "stalled")
        assert condition(status, "Stalled")[1] == "VerificationFailed"
        assert status["revision"]["applied"] == signed
        assert shells(cluster) == {"/bin/bash"}
    lifted = cluster.commit(lab_spec(), "stop signing", key=cluster.root / "alice")
    cluster.push()
    cluster.applied(lifted)


def test_a_force_pushed_rewrite_is_refused(cluster: Cluster, first: str) -> None:
    kept = cluster.commit(lab_spec(), "to be rewritten")
    cluster.push()
    cluster.applied(kept)
    cluster.git("reset", "-q", "--hard", "HEAD~1")
    rewritten = cluster.commit(lab_spec(shell="/bin/sh"), "history, rewritten")
    cluster.push(force=True)
    status = cluster.wait("refused", lambda s: s["revision"]["observed"] == rewritten
                          and s["state"] == "stalled")
    assert condition(status, "Stalled")[1] == "HistoryRewritten"
    assert shells(cluster) == {"/bin/bash"}
    cluster.git("reset", "-q", "--hard", kept)
    on_top = cluster.commit(lab_spec(), "on top of what was applied")
    cluster.push(force=True)
    cluster.applied(on_top)


def test_drift_is_repaired_within_an_interval(cluster: Cluster, first: str) -> None:
    before = len(cluster.history())
    cluster.ssh("node1", "sed -i '/^# END picl/i 10.1.10.99 rogue' /etc/hosts")
    cluster.wait("repaired", lambda s: any(
        c["trigger"] == "interval" and c["outcome"] == "applied"
        for c in cluster.history()[before:]))
    assert "rogue" not in cluster.ssh("node1", "cat /etc/hosts")


def test_report_mode_only_records_drift(cluster: Cluster, first: str) -> None:
    report = cluster.commit(lab_spec(mode="report"), "report only")
    cluster.push()
    cluster.applied(report)
    cluster.ssh("node2", "sed -i '/^# END picl/i 10.1.10.98 rogue' /etc/hosts")
    status = cluster.wait("drift recorded", lambda s: s["nodes"][2]["state"] == "drifted")
    assert condition(status, "Ready")[:2] == ("False", "DriftDetected")
    assert "~ hosts" in status["nodes"][2]["changes"]
    assert "rogue" in cluster.ssh("node2", "cat /etc/hosts")
    enforce = cluster.commit(lab_spec(), "enforce again")
    cluster.push()
    cluster.applied(enforce)
    assert "rogue" not in cluster.ssh("node2", "cat /etc/hosts")


class Strip:
    """`picl --lab leds show --backend terminal` running, its frames decoded as they come.

    Each frame is a line of 8 true-colour blocks; in status mode the primary's pixel i is node
    i, so a frame reads as one state per node (None: dark at that moment of its rhythm).
    """

    PIXEL = re.compile(r"\x1b\[38;2;(\d+);(\d+);(\d+)m(\u2588\u2588|\u2591\u2591)")
    BY_COLOUR = {p.colour: state for state, p in PATTERNS.items() if state != "unknown"}

    def __init__(self, cluster: Cluster):
        from picl.lab import exec_argv

        # `picl --lab` itself, as a person types it, inside the lab's network.
        argv, env = exec_argv(cluster.lab.name, [sys.executable, "-c",
                              "from picl.cli import main; main()", "--secrets",
                              str(cluster.secrets), "--lab", "leds", "show", "--backend",
                              "terminal"])
        env.update(PICL_SPEC=str(cluster.lab.spec), PICL_LAB_NAME=cluster.lab.name)
        env.pop("PICL_IN_LAB")
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.frames: list[tuple[str | None, ...]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            pixels = self.PIXEL.findall(line)
            if len(pixels) == 8:
                self.frames.append(tuple(
                    None if block == "\u2591\u2591" else self.state((int(r), int(g), int(b)))
                    for r, g, b, block in pixels))

    @classmethod
    def state(cls, rgb: tuple[int, int, int]) -> str:
        """The state whose colour this is, dimmed or not: the nearest in direction."""
        def cosine(colour: tuple[int, int, int]) -> float:
            dot = sum(a * b for a, b in zip(colour, rgb, strict=True))
            return dot / (math.hypot(*colour) * math.hypot(*rgb) or 1)

        return cls.BY_COLOUR[max(cls.BY_COLOUR, key=cosine)]

    def wait(self, what: str, nodes: tuple[str | None, ...], since: int = 0,
             timeout: float = WAIT) -> int:
        """The index of the first frame from `since` whose first pixels are `nodes` (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            for index in range(since, len(self.frames)):
                if self.frames[index][:len(nodes)] == nodes:
                    return index
            if time.monotonic() > deadline or self.proc.poll() is not None:
                seen = sorted({f[:len(nodes)] for f in self.frames[since:]}, key=str)
                raise AssertionError(f"the strip never showed {what} {nodes}; it showed {seen}")
            time.sleep(0.1)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.reader.join(timeout=10)


def test_the_primary_strip_follows_apply_drift_and_a_bad_commit(cluster: Cluster,
                                                                first: str) -> None:
    strip = Strip(cluster)
    try:
        calm = strip.wait("a converged cluster", ("converged",) * 3)
        shell = "/bin/sh" if shells(cluster) == {"/bin/bash"} else "/bin/bash"  # a change
        sha = cluster.commit(lab_spec(shell=shell), f"federico: {shell}, seen on the LEDs")
        cluster.push()
        applying = strip.wait("the push applying", ("applying",) * 3, since=calm)
        cluster.applied(sha)
        done = strip.wait("the push converged", ("converged",) * 3, since=applying)

        report = cluster.commit(lab_spec(shell=shell, mode="report"), "report only")
        cluster.push()
        cluster.applied(report)
        cluster.ssh("node2", "sed -i '/^# END picl/i 10.1.10.96 rogue' /etc/hosts")
        cluster.picl("agent", "reconcile", "--no-wait")
        drifted = strip.wait("node2 drifted", ("converged", "converged", "drifted"), since=done)

        bad = cluster.commit(lab_spec(mode="report").replace("uid = 1000", 'uid = "one"'),
                             "a typo")
        cluster.push()
        stalled = strip.wait("a bad commit", ("stalled",) * 3, since=drifted)
        assert cluster.status()["revision"]["observed"] == bad

        good = cluster.commit(lab_spec(), "fixed, enforced")
        cluster.push()
        cluster.applied(good)
        strip.wait("repaired", ("converged",) * 3, since=stalled)
    finally:
        strip.close()
    assert "rogue" not in cluster.ssh("node2", "cat /etc/hosts")


def test_suspend_and_resume(cluster: Cluster, first: str) -> None:
    suspended = cluster.picl("agent", "suspend")
    assert suspended.returncode == 0, suspended.stderr
    status = cluster.status()
    assert status["state"] == "suspended"
    assert condition(status, "Ready")[:2] == ("False", "Suspended")
    status = cluster.wait("suspended on the LEDs", lambda s: json.loads(
        cluster.ssh("node1", "cat /run/picl/leds.json"))["state"] == "suspended")
    assert status["suspended"]["by"]
    sha = cluster.commit(lab_spec(shell="/bin/sh"), "while suspended")
    cluster.push()
    refused = cluster.picl("agent", "reconcile")
    assert refused.returncode == 1 and "suspended" in refused.stderr
    assert cluster.status()["revision"]["observed"] != sha  # not even fetched
    assert shells(cluster) == {"/bin/bash"}
    resumed = cluster.picl("agent", "resume")
    assert resumed.returncode == 0, resumed.stderr
    cluster.applied(sha)
    assert shells(cluster) == {"/bin/sh"}


def test_triggers_at_once_make_one_cycle_at_a_time(cluster: Cluster, first: str) -> None:
    before = len(cluster.history())
    sha = cluster.commit(lab_spec(shell="/bin/bash"), "two triggers")
    with ThreadPoolExecutor() as pool:
        asked = pool.submit(cluster.picl, "agent", "reconcile", "--no-wait")
        cluster.push()
        assert asked.result().returncode == 0
    cluster.applied(sha)
    cycles = cluster.history()[before:]
    for earlier, later in zip(cycles, cycles[1:], strict=False):
        assert later["started"] >= earlier["finished"]


def test_the_converge_lock_is_shared_with_manual_apply(cluster: Cluster, first: str) -> None:
    # Held as `sudo picl apply` on the primary holds it, until the file below goes.
    hold = ("import os, time\n"
            "from picl.deploy.lock import converging\n"
            "with converging('arrakis', 'picl apply by federico', 'main@sha1:1a2b3c4d5e6f'):\n"
            "    while os.path.exists('/tmp/hold'): time.sleep(0.2)\n")
    cluster.ssh("node0", "touch /tmp/hold && python=$(dirname $(readlink -f /usr/local/bin/picl))"
                         f"/python && ($python -c {shlex.quote(hold)} "
                         ">/dev/null 2>&1 &)")
    sha = cluster.commit(lab_spec(shell="/bin/sh"), "while someone applies")
    cluster.push()
    status = cluster.wait("waiting for the lock", lambda s: s["revision"]["observed"] == sha
                          and condition(s, "Ready")[1] == "LockHeld")
    assert condition(status, "Reconciling")[:2] == ("True", "ProgressingWithRetry")
    assert re.search(r"converged by picl apply by federico \(pid \d+ on node0, since "
                     r"[\d:]+, revision main@sha1:1a2b3c4d5e6f\)", condition(status, "Ready")[2])
    assert shells(cluster) == {"/bin/bash"}
    cluster.ssh("node0", "rm /tmp/hold")
    cluster.applied(sha)
    assert shells(cluster) == {"/bin/sh"}


def test_kill_9_mid_apply_restarts_and_reconverges(cluster: Cluster, first: str) -> None:
    cluster.ssh("node2", "apt-get remove -y -q htop stress >/dev/null 2>&1")
    restarts = int(cluster.ssh("node0", "systemctl show -p NRestarts --value picl-agent"))
    before = len(cluster.history())
    asked = cluster.picl("agent", "reconcile", "--no-wait")
    assert asked.returncode == 0, asked.stderr
    # Killed on the primary the moment its status says it is applying (bounded).
    cluster.ssh("node0", "timeout 120 sh -c 'until grep -q applying /var/lib/picl/status.json; "
                         "do sleep 0.05; done' && "
                         "kill -9 $(systemctl show -p MainPID --value picl-agent)")
    # The restarted agent's `start` cycle may already be followed by an interval one: look in
    # the history, not at the current cycle.
    status = cluster.wait("converged again", lambda s: s["state"] == "ready" and any(
        c["trigger"] == "start" and c["outcome"] in ("applied", "unchanged")
        for c in cluster.history()[before:]))
    assert int(cluster.ssh("node0", "systemctl show -p NRestarts --value picl-agent")) \
        == restarts + 1
    assert "interrupted" in [c["outcome"] for c in cluster.history()]
    assert status["revision"]["applied"] is not None
    cluster.ssh("node2", "dpkg -s htop stress >/dev/null")


def test_a_node_coming_back_is_converged(cluster: Cluster, first: str) -> None:
    before = len(cluster.history())
    seen = int(cluster.ssh("node0", "journalctl -u picl-agent | grep -c 'node2: gone'",
                           check=False) or 0)
    assert cluster.lab.picl("lab", "kill", "node2").returncode == 0
    # The agent noticed (its session to node2 ended) before the node is back.
    cluster.ssh("node0", f"timeout 60 sh -c 'until [ $(journalctl -u picl-agent | "
                         f"grep -c \"node2: gone\") -gt {seen} ]; do sleep 0.5; done'")
    assert cluster.lab.picl("lab", "start", "node2").returncode == 0
    cluster.wait("node2 seen back", lambda s: any(
        "node2 came back" in c["trigger"] for c in cluster.history()[before:]))
    record = json.loads(cluster.ssh("node2", "cat /run/picl/leds.json"))
    assert record["state"] == "converged"  # /run was empty after the power cut


def test_the_agent_converges_on_boot(cluster: Cluster, first: str) -> None:
    before = len(cluster.history())
    assert cluster.lab.picl("lab", "kill", "node0").returncode == 0
    cluster.ssh("node1", "sed -i '/^# END picl/i 10.1.10.97 rogue' /etc/hosts")
    assert cluster.lab.picl("lab", "start", "node0").returncode == 0
    cluster.wait("converged on boot", lambda s: any(
        "boot" in c["trigger"] and c["outcome"] == "applied"
        for c in cluster.history()[before:]))
    assert "rogue" not in cluster.ssh("node1", "cat /etc/hosts")
    assert cluster.ssh("node0", "who | wc -l").strip() == "0"  # no one logged in


def test_an_upstream_is_fetched_only_with_its_host_key_pinned_at_install(
        cluster: Cluster, first: str) -> None:
    """An upstream on node1, over SSH with the agent's key: its host key is not trusted on
    first use; once `agent install` pins it (from the operator's known_hosts), it is fetched."""
    upstream = "ssh://root@10.1.10.241/srv/upstream.git"
    cluster.ssh("node1", f"command -v git >/dev/null || {{ {apt_install(['git'])}; }}")
    cluster.ssh("node1", "git init -q --bare -b main /srv/upstream.git")
    named = cluster.commit(lab_spec(upstream=upstream), "fetch the upstream too")
    cluster.push()
    cluster.applied(named)
    ahead = cluster.commit(lab_spec(upstream=upstream, shell="/bin/sh"), "only upstream")
    cluster.lab.exec(["git", "-C", str(cluster.repo), "push", "-q", upstream, "HEAD:main"])
    status = cluster.wait("the upstream refused", lambda s: condition(s, "Reconciling")[1]
                          == "UpstreamUnreachable")
    assert "Host key verification failed" in condition(status, "Reconciling")[2]
    assert "picl agent install" in condition(status, "Reconciling")[2]
    assert status["revision"]["applied"] == named  # the primary's own revision still holds
    assert shells(cluster) == {"/bin/bash"}
    spec = cluster.lab.spec
    spec.write_text(lab_spec(upstream=upstream))
    try:
        again = cluster.picl("agent", "install")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "10.1.10.241" in cluster.ssh("node0", "cat /var/lib/picl/upstream_known_hosts")
        cluster.applied(ahead)
        assert shells(cluster) == {"/bin/sh"}
    finally:
        spec.write_text(lab_spec())
    back = cluster.commit(lab_spec(), "no upstream")
    cluster.push()
    cluster.applied(back)


def test_install_again_upgrades_in_place_and_keeps_state(cluster: Cluster, first: str) -> None:
    before = cluster.status()
    again = cluster.picl("agent", "install")
    assert again.returncode == 0, again.stdout + again.stderr
    status = cluster.wait("ready again", lambda s: s["state"] == "ready"
                          and s["cycle"]["number"] > before["cycle"]["number"])
    assert status["revision"]["applied"] == before["revision"]["applied"]
    assert len(cluster.history()) > 1
