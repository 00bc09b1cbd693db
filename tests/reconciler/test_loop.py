"""One cycle at a time on real repositories: what is recorded after each push, and why.

The nodes are left out (planning and applying are tested on lab nodes): `_converge` answers
with the node states a test gives, `show` records what the LEDs would be told.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from picl.deploy.lock import Holder, LockHeld, converging
from picl.reconciler.errors import Waiting
from picl.reconciler.loop import Reconciler, Settings
from picl.reconciler.paths import Paths
from picl.reconciler.schedule import CLOCK_FLOOR
from picl.reconciler.status import NodeStatus, Result, began
from picl.reconciler.store import Store
from picl.reconciler.verify import trusted_keys
from picl.spec import Cluster
from tests.reconciler.conftest import Clone, git, gpg_keygen, keygen, local_ssh

NOW = CLOCK_FLOOR + 86_400.0 * 100


def spec(mode: str = "enforce", signed_by: str = "", shell: str = "/bin/bash",
         upstream: str = "") -> str:
    signers = f'signed_by = ["{signed_by}"]\n' if signed_by else ""
    signers += f'upstream = "{upstream}"\n' if upstream else ""
    return f"""\
[cluster]
name = "arrakis"
primary = "node0"

[network]
subnet = "10.1.10.0/24"

[[nodes]]
name = "node0"
address = "10.1.10.240"

[[nodes]]
name = "node1"
address = "10.1.10.241"

[[users]]
name = "federico"
uid = 1000
shell = "{shell}"

[agent]
interval = "1m"
mode = "{mode}"
{signers}"""


class Offline(Reconciler):
    """A reconciler whose nodes are data."""

    def __init__(self, paths: Paths, clock: list[float] | None = None, ssh: str = "ssh"):
        self.now = clock or [NOW]
        super().__init__(paths, connection=None,  # type: ignore[arg-type]
                         settings=Settings(ssh_command=ssh), clock=lambda: self.now[0],
                         draw=lambda: 0.5)
        self.nodes: tuple[NodeStatus, ...] = (NodeStatus("node0", "converged"),
                                              NodeStatus("node1", "converged"))
        self.converged: list[tuple[str, Cluster]] = []
        self.shown: list[str] = []
        self.fail_with: BaseException | None = None

    def _converge(self, cluster: Cluster, sha: str) -> Result:
        if self.fail_with is not None:
            raise self.fail_with
        self.converged.append((sha, cluster))
        applied = any(n.changes for n in self.nodes) and cluster.agent.mode == "enforce"
        return Result(sha, cluster.agent.mode, self.nodes, applied=applied)

    def show(self) -> None:
        self.shown.append(self.status.condition("Ready").reason)

    def conditions(self) -> dict[str, tuple[str, str]]:
        return {c.type: (c.status, c.reason) for c in self.status.conditions}


@pytest.fixture
def agent(paths: Paths) -> Offline:
    return Offline(paths)


def test_no_commit_yet(agent: Offline) -> None:
    delay = agent.reconcile("boot")
    assert agent.conditions()["Ready"] == ("Unknown", "NoRevision")
    assert 270 <= delay <= 330  # the default interval: no spec says otherwise yet
    assert agent.converged == []


def test_the_first_start_is_the_install_then_a_boot_or_a_restart(paths: Paths) -> None:
    assert Offline(paths).started("boot-1") == "install"
    assert Offline(paths).started("boot-1") == "start"
    assert Offline(paths).started("boot-2") == "boot"


def test_the_cluster_is_named_before_any_spec_loads(paths: Paths, clone: Clone) -> None:
    def named(settings: Settings) -> str:
        return Reconciler(paths, connection=None,  # type: ignore[arg-type]
                          settings=settings).status.cluster

    assert named(Settings(cluster="arrakis")) == "arrakis"  # as installed, before any push
    clone.commit({"cluster.toml": spec().replace('"arrakis"', '"caladan"')}, "renamed")
    clone.push()
    Offline(paths).reconcile("push")
    assert named(Settings(cluster="arrakis")) == "caladan"  # the spec's, once one loaded


def test_a_push_is_applied_and_recorded(agent: Offline, clone: Clone, paths: Paths) -> None:
    sha = clone.commit({"cluster.toml": spec()}, "first")
    clone.push()
    delay = agent.reconcile("push")
    assert [s for s, _ in agent.converged] == [sha]
    assert agent.conditions()["Ready"] == ("True", "ReconciliationSucceeded")
    revision = agent.status.revision
    assert (revision.observed, revision.attempted, revision.applied) == (sha, sha, sha)
    assert delay == pytest.approx(60)  # the spec's interval, jitter at its middle
    on_disk = Store(paths).status()
    assert on_disk == agent.status  # recorded, not only remembered
    assert Store(paths).history()[-1].outcome == "unchanged"
    assert agent.shown[-1] == "ReconciliationSucceeded"


def test_an_invalid_spec_stalls_and_the_next_good_commit_recovers(agent: Offline,
                                                                 clone: Clone) -> None:
    good = clone.commit({"cluster.toml": spec()}, "good")
    clone.push()
    agent.reconcile("push")
    bad = clone.commit({"cluster.toml": spec().replace('uid = 1000', 'uid = "x"')}, "bad")
    clone.push()
    agent.reconcile("push")
    assert [s for s, _ in agent.converged] == [good]  # nothing applied
    assert agent.conditions()["Stalled"] == ("True", "InvalidSpec")
    message = agent.status.condition("Stalled").message
    assert "cluster.toml:18:1: users[0].uid" in message
    assert str(agent.paths.checkout) not in message
    revision = agent.status.revision
    assert (revision.observed, revision.attempted, revision.applied) == (bad, bad, good)
    assert agent.status.nodes[0].state == "converged"  # the last good state, as it was
    # The interval comes round: still stalled on that revision, still nothing applied.
    agent.reconcile("interval")
    assert agent.conditions()["Stalled"] == ("True", "InvalidSpec")
    assert len(agent.converged) == 1
    fixed = clone.commit({"cluster.toml": spec(shell="/bin/zsh")}, "fixed")
    clone.push()
    agent.reconcile("push")
    assert agent.conditions()["Stalled"][0] == "False"
    assert agent.conditions()["Ready"] == ("True", "ReconciliationSucceeded")
    assert agent.status.revision.applied == fixed
    assert agent.converged[-1][1].users[0].shell == "/bin/zsh"


def test_a_rewritten_history_is_refused(agent: Offline, clone: Clone) -> None:
    clone.commit({"cluster.toml": spec()}, "one")
    two = clone.commit({"cluster.toml": spec(shell="/bin/sh")}, "two")
    clone.push()
    agent.reconcile("push")
    git(clone.dir, "reset", "-q", "--hard", "HEAD~1")
    rewritten = clone.commit({"cluster.toml": spec(shell="/bin/dash")}, "rewritten")
    clone.push(force=True)
    agent.reconcile("push")
    assert agent.conditions()["Stalled"] == ("True", "HistoryRewritten")
    assert agent.status.revision.observed == rewritten
    assert agent.status.revision.attempted == two
    assert len(agent.converged) == 1


def test_signed_commits_only(agent: Offline, clone: Clone, tmp_path: Path,
                             gnupg: Path) -> None:
    alice = keygen(tmp_path / "alice", "alice")
    keygen(tmp_path / "mallory", "mallory")
    root_trusts = gpg_keygen(gnupg, "Mallory <mallory@example.org>")  # in root's keyring
    first = clone.commit({"cluster.toml": spec(signed_by=alice)}, "first",
                         key=tmp_path / "alice")
    clone.push()
    agent.reconcile("push")
    assert agent.status.revision.applied == first
    assert trusted_keys(agent.paths.allowed_signers) == [" ".join(alice.split()[:2])]
    for key, gpg, who in ((None, None, "not signed"),
                          (tmp_path / "mallory", None, "does not list"),
                          (None, root_trusts, "signed with OpenPGP")):
        refused = clone.commit({"cluster.toml": spec(shell="/bin/sh")}, "sneaky", key=key,
                               gpg=gpg)
        clone.push()
        agent.reconcile("push")
        assert agent.conditions()["Stalled"] == ("True", "VerificationFailed")
        assert who in agent.status.condition("Stalled").message
        assert agent.status.revision.observed == refused
        assert agent.status.revision.attempted == first  # never tried
    # A commit cannot let itself in by naming its own key.
    mallory = (tmp_path / "mallory.pub").read_text().strip()
    clone.commit({"cluster.toml": spec(signed_by=mallory)}, "mine now",
                 key=tmp_path / "mallory")
    clone.push()
    agent.reconcile("push")
    assert agent.conditions()["Stalled"] == ("True", "VerificationFailed")
    # Signed by alice: applied; and alice can lift the requirement, signing that too.
    signed = clone.commit({"cluster.toml": spec()}, "signing off", key=tmp_path / "alice")
    clone.push()
    agent.reconcile("push")
    assert agent.status.revision.applied == signed
    assert trusted_keys(agent.paths.allowed_signers) is None  # says so, in so many words
    unsigned = clone.commit({"cluster.toml": spec(shell="/bin/sh")}, "unsigned is fine now")
    clone.push()
    agent.reconcile("push")
    assert agent.status.revision.applied == unsigned


@pytest.mark.parametrize("lost", ["deleted", "emptied"])
def test_a_lost_allowed_signers_file_stalls(agent: Offline, clone: Clone, tmp_path: Path,
                                            lost: str) -> None:
    alice = keygen(tmp_path / "alice", "alice")
    first = clone.commit({"cluster.toml": spec(signed_by=alice)}, "first",
                         key=tmp_path / "alice")
    clone.push()
    agent.reconcile("push")
    assert agent.status.revision.applied == first
    if lost == "deleted":
        agent.paths.allowed_signers.unlink()
    else:
        agent.paths.allowed_signers.write_text("")
    unsigned = clone.commit({"cluster.toml": spec(shell="/bin/sh")}, "unsigned")
    clone.push()
    agent.reconcile("push")
    assert agent.status.revision.observed == unsigned
    assert agent.conditions()["Stalled"] == ("True", "NoAllowedSigners")
    assert str(agent.paths.allowed_signers) in agent.status.condition("Stalled").message
    assert "picl agent install" in agent.status.condition("Stalled").message
    assert agent.status.revision.applied == first
    assert agent.status.revision.attempted == first  # never tried
    assert [s for s, _ in agent.converged] == [first]


def test_an_agent_without_a_trust_anchor_applies_nothing(agent: Offline, clone: Clone) -> None:
    agent.paths.allowed_signers.unlink()  # as if install never wrote it, or it was lost
    clone.commit({"cluster.toml": spec()}, "first")
    clone.push()
    agent.reconcile("push")
    assert agent.conditions()["Stalled"] == ("True", "NoAllowedSigners")
    assert agent.converged == []


def test_with_the_clock_wrong_only_the_revision_already_tried_converges(
        paths: Paths, clone: Clone, tmp_path: Path) -> None:
    alice = keygen(tmp_path / "alice", "alice")
    first = clone.commit({"cluster.toml": spec(signed_by=alice)}, "first", key=tmp_path / "alice")
    clone.push()
    Offline(paths).reconcile("push")
    booted = Offline(paths, clock=[0.0])  # 1970: a board without an RTC, just booted
    assert booted.started("another boot") == "boot"
    booted.reconcile("boot")
    assert booted.converged[-1][0] == first  # converged from the local repository
    second = clone.commit({"cluster.toml": spec(signed_by=alice, shell="/bin/sh")}, "second",
                          key=tmp_path / "alice")
    clone.push()
    delay = booted.reconcile("push")
    assert booted.conditions()["Ready"] == ("False", "ClockNotSet")
    assert booted.status.revision.applied == first
    assert delay == pytest.approx(5)  # retried soon: the clock may be set any moment
    booted.now[0] = NOW + 10
    booted.reconcile("retry")
    assert booted.status.revision.applied == second


def test_transient_failures_back_off_and_recover(agent: Offline, clone: Clone) -> None:
    sha = clone.commit({"cluster.toml": spec()}, "first")
    clone.push()
    agent.fail_with = Waiting("LockHeld", "arrakis: another apply is running (pid 7)")
    delays = [agent.reconcile("push"), agent.reconcile("retry"), agent.reconcile("retry")]
    assert delays == pytest.approx([5, 10, 20])
    assert agent.conditions()["Reconciling"] == ("True", "ProgressingWithRetry")
    assert agent.conditions()["Ready"] == ("False", "LockHeld")
    agent.fail_with = None
    agent.nodes = (NodeStatus("node0", "converged"),
                   NodeStatus("node1", "unreachable", error="unreachable: no route"))
    assert agent.reconcile("retry") == pytest.approx(40)  # a node down: still backing off
    assert agent.conditions()["Ready"] == ("False", "NodesUnreachable")
    agent.nodes = (NodeStatus("node0", "converged"), NodeStatus("node1", "converged"))
    assert agent.reconcile("node1 came back") == pytest.approx(60)
    assert agent.status.revision.applied == sha


class AtTheLock(Offline):
    """The agent's own converge step, as far as the lock: planning is replaced by `plan`."""

    def __init__(self, paths: Paths, monkeypatch: pytest.MonkeyPatch):
        super().__init__(paths)
        self.plan: Callable[[Any], Any] = lambda target: pytest.fail("reached the nodes")
        monkeypatch.setattr("picl.deploy.converge.make_plan", lambda target: self.plan(target))

    def _converge(self, cluster: Cluster, sha: str) -> Result:
        return Reconciler._converge(self, cluster, sha)


@pytest.fixture
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PICL_LOCK_DIR", str(tmp_path / "lock"))
    return tmp_path / "lock"


def test_a_persons_apply_holding_the_lock_makes_the_cycle_wait(
        paths: Paths, clone: Clone, lock_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = AtTheLock(paths, monkeypatch)
    clone.commit({"cluster.toml": spec()}, "first")
    clone.push()
    with converging("arrakis", "picl apply by federico", "main@sha1:1a2b3c4d5e6f") as person:
        delay = agent.reconcile("push")
    assert delay == pytest.approx(5)  # retried soon, with backoff: the retry is the wait
    assert agent.conditions()["Ready"] == ("False", "LockHeld")
    assert agent.status.condition("Ready").message == (
        f"arrakis: the cluster is being converged by {person}: one converge at a time")
    assert Store(paths).history()[-1].outcome == "retrying"


def test_while_the_agent_converges_the_lock_names_its_cycle_and_revision(
        paths: Paths, clone: Clone, lock_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = AtTheLock(paths, monkeypatch)
    sha = clone.commit({"cluster.toml": spec()}, "first")
    clone.push()
    seen: list[Holder | None] = []

    def a_person_applies(target: Any) -> Any:
        with pytest.raises(LockHeld) as held, converging("arrakis", "picl apply by federico"):
            pass
        seen.append(held.value.holder)
        raise Waiting("Seen", "the test looked")

    agent.plan = a_person_applies
    agent.reconcile("push")
    (holder,) = seen
    assert holder is not None
    assert (holder.what, holder.revision) == ("the agent's cycle 1 (push)", f"main@sha1:{sha[:12]}")


def test_an_unsafe_lock_directory_makes_the_cycle_wait(
        paths: Paths, clone: Clone, lock_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lock_dir.mkdir(mode=0o777)
    lock_dir.chmod(0o777)
    agent = AtTheLock(paths, monkeypatch)
    clone.commit({"cluster.toml": spec()}, "first")
    clone.push()
    agent.reconcile("push")
    assert agent.conditions()["Ready"] == ("False", "LockRefused")
    assert "others may write in it" in agent.status.condition("Ready").message


@pytest.mark.parametrize("fail", [
    "ssh: connect to host upstream port 22: Connection refused",
    "git@upstream: Permission denied (publickey).",
    "Host key verification failed.",
])
def test_an_upstream_that_cannot_be_fetched_is_waited_for(paths: Paths, clone: Clone,
                                                          tmp_path: Path, fail: str) -> None:
    agent = Offline(paths, ssh=local_ssh(tmp_path / "bin", fail=fail))
    first = clone.commit({"cluster.toml": spec(upstream="git@upstream:me/arrakis.git")},
                         "with an upstream")
    clone.push()
    agent.reconcile("push")
    assert agent.status.revision.applied == first
    # From now on the upstream is fetched too, and fails: the primary's revision still holds.
    delays = [agent.reconcile("interval"), agent.reconcile("retry"), agent.reconcile("retry")]
    assert delays == pytest.approx([5, 10, 20])  # retried, backing off
    assert agent.conditions()["Reconciling"] == ("True", "UpstreamUnreachable")
    assert agent.conditions()["Ready"] == ("True", "ReconciliationSucceeded")
    assert fail in agent.status.condition("Ready").message
    assert agent.status.revision.applied == first
    # A fix pushed to the primary still arrives, and with it an end to the retries.
    fixed = clone.commit({"cluster.toml": spec()}, "no upstream")
    clone.push()
    assert agent.reconcile("push") == pytest.approx(60)
    assert agent.status.revision.applied == fixed
    assert agent.conditions()["Reconciling"] == ("False", "Reconciled")


def test_a_bug_is_recorded_and_the_agent_goes_on(agent: Offline, clone: Clone) -> None:
    clone.commit({"cluster.toml": spec()}, "first")
    clone.push()
    agent.fail_with = KeyError("node9")
    assert agent.reconcile("push") == pytest.approx(5)
    assert agent.conditions()["Ready"] == ("False", "InternalError")
    assert agent.status.cycle is not None and agent.status.cycle.outcome == "failed"


def test_report_mode_records_drift(agent: Offline, clone: Clone) -> None:
    sha = clone.commit({"cluster.toml": spec(mode="report")}, "report only")
    clone.push()
    agent.nodes = (NodeStatus("node0", "converged"),
                   NodeStatus("node1", "drifted", ("~ hosts",)))
    agent.reconcile("interval")
    assert agent.conditions()["Ready"] == ("False", "DriftDetected")
    assert "node1 (1)" in agent.status.condition("Ready").message
    assert agent.status.revision.applied is None
    assert agent.status.mode == "report"
    assert agent.status.revision.attempted == sha


def test_stopped_mid_cycle_is_recorded(agent: Offline, clone: Clone, paths: Paths) -> None:
    clone.commit({"cluster.toml": spec()}, "first")
    clone.push()
    agent.fail_with = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        agent.reconcile("push")
    assert Store(paths).status().cycle.outcome == "interrupted"  # type: ignore[union-attr]


def test_a_crash_mid_cycle_is_closed_at_start(paths: Paths, clone: Clone) -> None:
    clone.commit({"cluster.toml": spec()}, "first")
    clone.push()
    first = Offline(paths)
    first.reconcile("push")
    Store(paths).save(began(first.status, "push", NOW + 5))  # as a kill -9 mid-apply leaves it
    again = Offline(paths)
    assert again.started("boot-1") == "boot"
    assert again.status.cycle is not None and again.status.cycle.outcome == "interrupted"
    assert again.cluster is not None  # the nodes are known before any cycle
    assert Offline(paths).started("boot-1") == "start"  # the same boot: a restart
    assert [c.outcome for c in Store(paths).history()] == ["unchanged", "interrupted"]
