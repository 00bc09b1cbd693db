"""The fetcher: the branch's tip from the primary's bare repository (and the upstream, if set).

Fast-forward only. The agent keeps the revision it last tried under `refs/picl/attempted` in
its working clone; a tip that does not descend from it is rewritten history and is refused
(`Stalled`), whatever was force-pushed. An upstream that cannot be fetched, for any reason (out
of reach, refused, a bad URL), is not an error: the cluster converges from the primary's own
repository, and the fetch says why the upstream was left out (the loop retries it later).

The upstream is fetched over SSH or HTTPS only, whatever its URL says, and over SSH only from a
host whose key was pinned at install (`picl agent install`): never trusted on first use.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import git

from picl.reconciler.errors import Stalled, Waiting
from picl.spec.checks import GIT_HELPER

log = logging.getLogger(__name__)

ATTEMPTED_REF = "refs/picl/attempted"
UPSTREAM_TIMEOUT = 60  # seconds for the upstream fetch: a dead uplink must not hold a cycle
# The upstream is reached without a terminal, never waiting on a prompt.
QUIET = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false"}
# git's own transports for the upstream: SSH and HTTPS, nothing else (ext::, file, git://).
PROTOCOLS = {"protocol.allow": "never", "protocol.ssh.allow": "always",
             "protocol.https.allow": "always"}
SSH_SCHEMES = ("ssh", "git+ssh", "ssh+git")
SCP_LIKE = re.compile(r"(?:[^@/]*@)?(?P<host>\[[^\]/]+\]|[^:/\[]+):.*", re.DOTALL)

Ancestry = Callable[[str, str], bool]


@dataclass(frozen=True)
class Revision:
    sha: str
    subject: str = ""
    author: str = ""
    committed: float = 0.0


@dataclass(frozen=True)
class Fetched:
    revision: Revision | None  # None: the branch has no commit yet
    upstream_error: str = ""  # why the upstream was left out of this fetch


def choose(local: str | None, upstream: str | None, is_ancestor: Ancestry) -> str | None:
    """The revision to try from the primary's tip and the upstream's: the one ahead.

    Both moving on from each other (diverged) is for a person to settle.
    """
    if local is None or upstream is None or local == upstream:
        return local or upstream
    if is_ancestor(local, upstream):
        return upstream
    if is_ancestor(upstream, local):
        return local
    raise Stalled("Diverged", f"the primary's repository ({local[:12]}) and the upstream "
                  f"({upstream[:12]}) have diverged: merge them and push the merge")


def fast_forward(previous: str | None, candidate: str, is_ancestor: Ancestry) -> None:
    """Refuse a candidate that does not descend from the revision last tried."""
    if previous is None or previous == candidate or is_ancestor(previous, candidate):
        return
    raise Stalled("HistoryRewritten",
                  f"{candidate[:12]} does not descend from {previous[:12]}, the revision last "
                  f"tried: history was rewritten (a force-push?); push a commit on top of "
                  f"{previous[:12]} instead")


def ssh_host(url: str) -> str | None:
    """The name an SSH upstream's host key goes by in known_hosts (`host`, or `[host]:port`
    off port 22); None for an upstream that is not fetched over SSH."""
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme.lower() not in SSH_SCHEMES or not parts.hostname:
            return None
        try:
            port = parts.port or 22
        except ValueError:
            return None
        host = parts.hostname
    else:  # scp-like, as git reads it: [user@]host:path, a colon before any slash
        if GIT_HELPER.match(url):
            return None
        scp = SCP_LIKE.fullmatch(url)
        if not scp:
            return None
        host, port = scp["host"].strip("[]").lower(), 22
    return host if port == 22 else f"[{host}]:{port}"


def upstream_ssh(known_hosts: Path, key: Path | None) -> str:
    """The ssh command the upstream is fetched with: batch mode, the agent's key, and the host
    key pinned at install in `known_hosts` as the only one trusted."""
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
            "-o", "StrictHostKeyChecking=yes", "-o", "CheckHostIP=no",
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]
    if key:
        argv += ["-i", str(key), "-o", "IdentitiesOnly=yes"]
    return shlex.join(argv)


def _transports() -> dict[str, str]:
    """git configuration, as environment, that allows only the PROTOCOLS."""
    env = {"GIT_CONFIG_COUNT": str(len(PROTOCOLS))}
    for number, (key, value) in enumerate(PROTOCOLS.items()):
        env[f"GIT_CONFIG_KEY_{number}"], env[f"GIT_CONFIG_VALUE_{number}"] = key, value
    return env


class Source:
    """The agent's working clone of the primary's bare repository."""

    def __init__(self, repository: Path, checkout: Path, branch: str, ssh_command: str = "ssh"):
        self.repository = repository
        self.checkout_dir = checkout
        self.branch = branch
        self.ssh_command = ssh_command
        self._repo: git.Repo | None = None

    @property
    def repo(self) -> git.Repo:
        """The working clone, made on first use."""
        if self._repo is None:
            if (self.checkout_dir / ".git").is_dir():
                self._repo = git.Repo(self.checkout_dir)
            else:
                self.checkout_dir.mkdir(parents=True, exist_ok=True)
                self._repo = git.Repo.init(self.checkout_dir)
            self._set_remote("origin", str(self.repository))
        return self._repo

    def _set_remote(self, remote: str, url: str) -> None:
        repo = self.repo
        if remote in [r.name for r in repo.remotes]:
            if repo.remotes[remote].url != url:
                repo.remotes[remote].set_url(url)
                # What another repository said is no word from this one.
                tips = repo.git.for_each_ref("--format=%(refname)", f"refs/remotes/{remote}/")
                for ref in tips.split():
                    repo.git.update_ref("-d", ref)
        else:
            repo.create_remote(remote, url)

    def _tip(self, remote: str) -> str | None:
        try:
            return self.repo.git.rev_parse("--verify", "--quiet",
                                           f"refs/remotes/{remote}/{self.branch}^{{commit}}")
        except git.GitCommandError:
            return None

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether `descendant` has `ancestor` in its history (a missing commit: no)."""
        try:
            self.repo.git.merge_base("--is-ancestor", ancestor, descendant)
        except git.GitCommandError:
            return False  # exit 1: it is not; 128: a commit is missing
        return True

    def fetch(self, upstream: str | None = None) -> Fetched:
        """Fetch the branch; the candidate revision (ahead of both), or None with no commit."""
        if not (self.repository / "HEAD").is_file():
            raise Waiting("NoRepository", f"{self.repository}: no repository (run "
                          "`picl agent install`)")
        env = {**os.environ, **QUIET}
        try:
            # Every branch, forced: a rewritten tip is seen as it is, and judged below.
            self.repo.git.fetch("--no-tags", "--prune", "origin",
                                "+refs/heads/*:refs/remotes/origin/*", env=env)
        except git.GitCommandError as exc:
            raise Waiting("FetchFailed", f"{self.repository}: {_last_line(exc)}") from None
        upstream_tip, upstream_error = None, ""
        if upstream:
            upstream_tip, upstream_error = self._fetch_upstream(upstream, env)
        sha = choose(self._tip("origin"), upstream_tip, self.is_ancestor)
        return Fetched(self.describe(sha) if sha else None, upstream_error)

    def _fetch_upstream(self, url: str, env: dict[str, str]) -> tuple[str | None, str]:
        # Whatever goes wrong with the upstream, the primary's repository still converges.
        try:
            self._set_remote("upstream", url)
        except (git.GitError, OSError, ValueError) as exc:
            self._forget("upstream")  # what another URL said is no word from this one
            why = "only SSH and HTTPS upstreams are fetched" if isinstance(
                exc, git.UnsafeProtocolError | git.UnsafeOptionError) else str(exc)
            return None, _warned(f"upstream {url} refused: {why}")
        try:
            self.repo.git.fetch("--no-tags", "upstream",
                                f"+refs/heads/{self.branch}:refs/remotes/upstream/{self.branch}",
                                env={**env, **_transports(), "GIT_SSH_COMMAND": self.ssh_command},
                                kill_after_timeout=UPSTREAM_TIMEOUT)
        except (git.GitError, OSError, ValueError) as exc:
            why = _last_line(exc) if isinstance(exc, git.GitCommandError) else str(exc)
            if "Host key verification failed" in why:
                why += (" (not the host key pinned at install: check it, then run "
                        "`picl agent install` again to pin it)")
            # Its last word still counts: the primary's repository may lag behind it.
            return self._tip("upstream"), _warned(f"upstream {url} out of reach: {why}")
        return self._tip("upstream"), ""

    def _forget(self, remote: str) -> None:
        if remote in [r.name for r in self.repo.remotes]:
            self.repo.delete_remote(self.repo.remotes[remote])

    def describe(self, sha: str) -> Revision:
        commit = self.repo.commit(sha)
        return Revision(commit.hexsha, commit.summary if isinstance(commit.summary, str)
                        else commit.summary.decode(errors="replace"),
                        f"{commit.author.name} <{commit.author.email}>",
                        float(commit.committed_date))

    def attempted(self) -> str | None:
        """The revision last tried (kept as a ref: never garbage-collected)."""
        try:
            return self.repo.git.rev_parse("--verify", "--quiet", ATTEMPTED_REF)
        except git.GitCommandError:
            return None

    def mark_attempted(self, sha: str) -> None:
        self.repo.git.update_ref(ATTEMPTED_REF, sha)

    def check_out(self, sha: str) -> Path:
        """The working tree at `sha`, nothing else in it; returns its directory."""
        self.repo.git.checkout("--force", "--detach", sha)
        self.repo.git.clean("-ffdxq")
        return self.checkout_dir


def _warned(error: str) -> str:
    log.warning("%s", error)
    return error


def _last_line(exc: git.GitCommandError) -> str:
    """git's reason in a line: its first `fatal:` line, else its last line; where git only
    says it could not read from the remote, the line before, the transport's (ssh's) own."""
    text = (exc.stderr or str(exc)).strip().replace("stderr: ", "").strip("' \n")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    fatal = [n for n, line in enumerate(lines) if line.startswith("fatal: ")]
    if not fatal:
        return lines[-1] if lines else f"git exited {exc.status}"
    said = lines[fatal[0]].removeprefix("fatal: ")
    if said.startswith("Could not read from remote repository") and fatal[0] > 0:
        return lines[fatal[0] - 1]
    return said
