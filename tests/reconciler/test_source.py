"""The fetcher: fast-forward only, on real repositories; which tip to try, as data."""

from __future__ import annotations

from pathlib import Path

import pytest

from picl.reconciler.errors import Stalled, Waiting
from picl.reconciler.paths import Paths
from picl.reconciler.source import Source, choose, fast_forward, ssh_host, upstream_ssh
from tests.reconciler.conftest import Clone, git, local_ssh

# A history as data: each commit's parent. a <- b <- c, and a <- x (a branch off a).
PARENTS = {"b": "a", "c": "b", "x": "a"}


def is_ancestor(ancestor: str, descendant: str) -> bool:
    while descendant:
        if descendant == ancestor:
            return True
        descendant = PARENTS.get(descendant, "")
    return False


# (primary's tip, upstream's tip) -> the one to try (or the stall reason)
CHOICES = [
    (None, None, None),
    ("a", None, "a"),
    (None, "a", "a"),
    ("b", "b", "b"),
    ("a", "c", "c"),  # the upstream is ahead
    ("c", "a", "c"),  # someone pushed to the primary, not yet upstream
    ("c", "x", "Diverged"),
]


@pytest.mark.parametrize(("local", "upstream", "expected"), CHOICES)
def test_choose(local: str | None, upstream: str | None, expected: str | None) -> None:
    if expected == "Diverged":
        with pytest.raises(Stalled) as stalled:
            choose(local, upstream, is_ancestor)
        assert stalled.value.reason == "Diverged"
    else:
        assert choose(local, upstream, is_ancestor) == expected


# (revision last tried, candidate) -> accepted?
FAST_FORWARDS = [
    (None, "a", True),  # the first revision
    ("a", "a", True),
    ("a", "c", True),
    ("b", "c", True),
    ("c", "b", False),  # history went back: rewritten
    ("c", "x", False),  # force-pushed a different history
]


@pytest.mark.parametrize(("previous", "candidate", "accepted"), FAST_FORWARDS)
def test_fast_forward(previous: str | None, candidate: str, accepted: bool) -> None:
    if accepted:
        fast_forward(previous, candidate, is_ancestor)
    else:
        with pytest.raises(Stalled) as stalled:
            fast_forward(previous, candidate, is_ancestor)
        assert stalled.value.reason == "HistoryRewritten"
        assert previous is not None and previous[:12] in stalled.value.message


def source(paths: Paths, ssh: str = "ssh") -> Source:
    return Source(paths.repository, paths.checkout, "main", ssh)


def test_an_empty_repository_has_no_revision(paths: Paths) -> None:
    assert source(paths).fetch().revision is None


def test_no_repository_is_waited_for(tmp_path) -> None:  # noqa: ANN001
    missing = Paths(tmp_path / "nowhere")
    with pytest.raises(Waiting) as waiting:
        source(missing).fetch()
    assert waiting.value.reason == "NoRepository"


def test_fetch_and_check_out(paths: Paths, clone: Clone) -> None:
    first = clone.commit({"cluster.toml": "one\n", "files/motd": "hi\n"}, "first")
    clone.push()
    fetched = source(paths).fetch()
    assert fetched.revision is not None
    assert (fetched.revision.sha, fetched.revision.subject) == (first, "first")
    assert "federico@example.org" in fetched.revision.author
    tree = source(paths).check_out(first)
    assert (tree / "files/motd").read_text() == "hi\n"
    git(clone.dir, "rm", "-q", "files/motd")
    second = clone.commit({"cluster.toml": "two\n"}, "second")
    clone.push()
    again = source(paths)
    assert again.fetch().revision.sha == second  # type: ignore[union-attr]
    again.check_out(second)
    assert not (tree / "files/motd").exists()  # nothing of another revision stays
    (tree / "stray").write_text("left by hand\n")
    again.check_out(second)
    assert not (tree / "stray").exists()


def test_a_force_push_is_seen_as_it_is_and_refused(paths: Paths, clone: Clone) -> None:
    clone.commit({"cluster.toml": "one\n"}, "first")
    second = clone.commit({"cluster.toml": "two\n"}, "second")
    clone.push()
    agent = source(paths)
    assert agent.fetch().revision.sha == second  # type: ignore[union-attr]
    agent.mark_attempted(second)
    git(clone.dir, "reset", "-q", "--hard", "HEAD~1")
    rewritten = clone.commit({"cluster.toml": "rewritten\n"}, "rewritten")
    clone.push(force=True)
    fetched = agent.fetch()
    assert fetched.revision is not None and fetched.revision.sha == rewritten
    with pytest.raises(Stalled) as stalled:
        fast_forward(agent.attempted(), rewritten, agent.is_ancestor)
    assert stalled.value.reason == "HistoryRewritten"
    # A commit on top of the revision last tried is how to go on.
    git(clone.dir, "reset", "-q", "--hard", second)
    on_top = clone.commit({"cluster.toml": "three\n"}, "on top")
    clone.push(force=True)
    assert agent.fetch().revision.sha == on_top  # type: ignore[union-attr]
    fast_forward(agent.attempted(), on_top, agent.is_ancestor)


def test_the_attempted_revision_outlives_a_rewrite(paths: Paths, clone: Clone) -> None:
    first = clone.commit({"cluster.toml": "one\n"}, "first")
    clone.push()
    agent = source(paths)
    agent.fetch()
    agent.mark_attempted(first)
    git(clone.dir, "commit", "-q", "--amend", "-m", "amended")
    clone.push(force=True)
    agent.fetch()
    git(paths.checkout, "gc", "-q", "--prune=now")
    assert source(paths).attempted() == first
    assert source(paths).is_ancestor(first, first)


def test_an_upstream_ahead_is_taken_and_a_dead_one_left_out(paths: Paths, clone: Clone,
                                                            tmp_path: Path) -> None:
    base = clone.commit({"cluster.toml": "one\n"}, "first")
    clone.push()
    upstream = tmp_path / "upstream.git"
    git(tmp_path, "init", "-q", "--bare", str(upstream))
    ahead = clone.commit({"cluster.toml": "two\n"}, "only upstream")
    assert base != ahead
    git(clone.dir, "push", "-q", str(upstream), "HEAD:main")
    url = f"ssh://git@upstream{upstream}"
    agent = source(paths, ssh=local_ssh(tmp_path / "bin"))
    assert agent.fetch(url).revision.sha == ahead  # type: ignore[union-attr]
    # Out of reach, the upstream counts with what it last said: the primary's repository lags.
    upstream.rename(tmp_path / "moved.git")
    fetched = agent.fetch(url)
    assert fetched.revision is not None and fetched.revision.sha == ahead
    assert fetched.upstream_error.startswith(f"upstream {url} out of reach: ")
    assert "does not appear to be a git repository" in fetched.upstream_error
    # Another upstream: nothing the old one said counts.
    gone = f"ssh://git@upstream{tmp_path / 'gone.git'}"
    fetched = agent.fetch(gone)
    assert fetched.revision is not None and fetched.revision.sha == base
    assert fetched.upstream_error.startswith(f"upstream {gone} out of reach")
    # Nor what it said before a URL that cannot even be a remote.
    git(clone.dir, "push", "-q", str(tmp_path / "moved.git"), "HEAD:main")
    assert agent.fetch(f"ssh://git@upstream{tmp_path / 'moved.git'}").revision.sha == ahead  # type: ignore[union-attr]
    fetched = agent.fetch("ext::sh -c true")
    assert fetched.revision is not None and fetched.revision.sha == base


# How ssh fails -> what the fetch says of the upstream
SSH_FAILURES = [
    ("ssh: connect to host upstream port 22: Connection refused",
     "out of reach: ssh: connect to host upstream port 22: Connection refused"),
    ("ssh: Could not resolve hostname upstream: Name or service not known",
     "out of reach: ssh: Could not resolve hostname upstream"),
    ("git@upstream: Permission denied (publickey).",
     "out of reach: git@upstream: Permission denied (publickey)."),
    ("No ED25519 host key is known for upstream and you have requested strict checking.\n"
     "Host key verification failed.",
     "out of reach: Host key verification failed. (not the host key pinned at install: check "
     "it, then run `picl agent install` again to pin it)"),
]


@pytest.mark.parametrize(("fail", "said"), SSH_FAILURES)
def test_an_upstream_ssh_refuses_is_left_out(paths: Paths, clone: Clone, tmp_path: Path,
                                             fail: str, said: str) -> None:
    tip = clone.commit({"cluster.toml": "one\n"}, "first")
    clone.push()
    url = "git@upstream:me/arrakis.git"
    fetched = source(paths, ssh=local_ssh(tmp_path / "bin", fail=fail)).fetch(url)
    assert fetched.revision is not None and fetched.revision.sha == tip
    assert fetched.upstream_error.startswith(f"upstream {url} {said}")


# Upstreams git could be made to run a command with, or read without SSH or TLS: never fetched,
# and never in the way of the primary's own repository.
REFUSED = [
    "ext::sh -c touch% /tmp/picl-pwned% >&2",
    "--upload-pack=touch /tmp/picl-pwned",
    "file:///srv/other.git",
    "/srv/other.git",
    "git://upstream/me/arrakis.git",
    "http://upstream/me/arrakis.git",
    "fd::3",
]


@pytest.mark.parametrize("url", REFUSED)
def test_an_upstream_not_over_ssh_or_https_is_refused(paths: Paths, clone: Clone,
                                                      tmp_path: Path, url: str) -> None:
    tip = clone.commit({"cluster.toml": "one\n"}, "first")
    clone.push()
    fetched = source(paths, ssh=local_ssh(tmp_path / "bin")).fetch(url)
    assert fetched.revision is not None and fetched.revision.sha == tip
    assert fetched.upstream_error.startswith(f"upstream {url} ")
    assert not Path("/tmp/picl-pwned").exists()


# An upstream URL -> the name its host key goes by in known_hosts (None: not over SSH)
HOSTS = [
    ("git@github.com:me/arrakis.git", "github.com"),
    ("github.com:me/arrakis.git", "github.com"),
    ("ssh://git@github.com/me/arrakis.git", "github.com"),
    ("ssh://git@GitHub.com:22/me/arrakis.git", "github.com"),
    ("ssh://git@git.example.org:2222/arrakis.git", "[git.example.org]:2222"),
    ("git+ssh://git@git.example.org/arrakis.git", "git.example.org"),
    ("ssh://git@[fd00::1]:2222/arrakis.git", "[fd00::1]:2222"),
    ("git@[fd00::1]:arrakis.git", "fd00::1"),
    ("https://github.com/me/arrakis.git", None),
    ("http://github.com/me/arrakis.git", None),
    ("/srv/arrakis.git", None),
    ("./arrakis:git", None),
    ("ext::ssh -o ProxyCommand=x", None),
    ("ssh://git@host:notaport/x.git", None),
    (":path", None),
]


@pytest.mark.parametrize(("url", "host"), HOSTS)
def test_ssh_host(url: str, host: str | None) -> None:
    assert ssh_host(url) == host


def test_upstream_ssh_trusts_only_the_pinned_key() -> None:
    assert upstream_ssh(Path("/var/lib/picl/upstream_known_hosts"),
                        Path("/etc/picl/agent_ed25519")) == (
        "ssh -o BatchMode=yes -o ConnectTimeout=10 -o StrictHostKeyChecking=yes "
        "-o CheckHostIP=no -o UserKnownHostsFile=/var/lib/picl/upstream_known_hosts "
        "-o GlobalKnownHostsFile=/dev/null -i /etc/picl/agent_ed25519 -o IdentitiesOnly=yes")
