"""Single-value checks, as data: (value, accepted?)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from picl.spec import checks
from tests.spec.conftest import KEY

CASES: list[tuple[Callable[[str], object], str, bool]] = [
    (checks.hostname, "node0", True),
    (checks.hostname, "a", True),
    (checks.hostname, "node-0", True),
    (checks.hostname, "-node", False),
    (checks.hostname, "node-", False),
    (checks.hostname, "Node0", False),
    (checks.hostname, "node.0", False),
    (checks.hostname, "a" * 64, False),
    (checks.hostname, "1234", False),
    (checks.hostname, "", False),
    (checks.domain, "cluster", True),
    (checks.domain, "lab.example.org", True),
    (checks.domain, "lab..org", False),
    (checks.username, "federico", True),
    (checks.username, "_apt", True),
    (checks.username, "user-1", True),
    (checks.username, "1user", False),
    (checks.username, "User", False),
    (checks.username, "a" * 33, False),
    (checks.github_user, "flucifredi", True),
    (checks.github_user, "a-b", True),
    (checks.github_user, "a--b", False),
    (checks.github_user, "-ab", False),
    (checks.github_user, "a" * 40, False),
    (checks.package, "openmpi-bin", True),
    (checks.package, "g++", True),
    (checks.package, "libc6.1", True),
    (checks.package, "X", False),
    (checks.package, "a b", False),
    (checks.package, "memtest86+", True),  # real packages end with '+': apt installs them
    (checks.package, "0ad", True),
    (checks.package, "openssh-server-", False),  # apt-get: "remove openssh-server"
    (checks.package, "sudo--", False),
    (checks.package, "g++-", False),
    (checks.package, "-oAPT::Get::Purge=1", False),
    (checks.package, "--purge", False),
    (checks.package, "-y", False),
    (checks.package, "foo=1.0", False),
    (checks.package, "foo=", False),
    (checks.package, "foo/bookworm", False),
    (checks.package, "foo/", False),
    (checks.package, "foo:arm64", False),
    (checks.package, "foo:", False),
    (checks.package, "?name(foo)", False),  # an apt pattern
    (checks.package, "~nfoo", False),
    (checks.package, "foo*", False),
    (checks.package, ".foo", False),
    (checks.package, "+foo", False),
    (checks.package, "a", False),
    (checks.package, "Foo", False),
    (checks.package, "foo\n", False),
    (checks.package, "", False),
    (checks.absolute_path, "/srv/shared", True),
    (checks.absolute_path, "/", True),
    (checks.absolute_path, "srv", False),
    (checks.absolute_path, "/srv/", False),
    (checks.absolute_path, "/srv//x", False),
    (checks.absolute_path, "/srv/./x", False),
    (checks.absolute_path, "/a/../b", False),
    (checks.absolute_path, "/a\tb", False),
    (checks.absolute_path, "/a\x7fb", False),
    (checks.data_path, "/shared", True),
    (checks.data_path, "/boot/firmware", False),
    (checks.data_path, "/var", False),
    (checks.data_path, "/var/lib/x", True),
    (checks.options, "rw", True),
    (checks.options, "rw,sync,no_subtree_check", True),
    (checks.options, "x-systemd.mount-timeout=30s", True),
    (checks.options, "rw,,sync", False),
    (checks.options, "rw sync", False),
    (checks.options, "rw,#", False),
    (checks.options, "", False),
    (checks.duration_seconds, "30s", True),
    (checks.duration_seconds, "1h30m", True),
    (checks.duration_seconds, "", False),
    (checks.duration_seconds, "5", False),
    (checks.duration_seconds, "5d", False),
    (checks.duration_seconds, "5m\n", False),
    (checks.duration, "1h30m", True),
    (checks.duration, "30m1h", False),
    (checks.branch, "main", True),
    (checks.branch, "deploy/arrakis", True),
    (checks.branch, "a..b", False),
    (checks.branch, "a/", False),
    (checks.branch, "x.lock", False),
    (checks.upstream, "git@github.com:me/arrakis.git", True),
    (checks.upstream, "github.com:me/arrakis.git", True),
    (checks.upstream, "git@10.1.10.9:/srv/git/arrakis.git", True),
    (checks.upstream, "ssh://git@github.com/me/arrakis.git", True),
    (checks.upstream, "ssh://git.example.org:2222/srv/arrakis.git", True),
    (checks.upstream, "https://github.com/me/arrakis.git", True),
    (checks.upstream, "https://git.example.org:8443/~me/arrakis", True),
    (checks.upstream, "ext::sh -c touch% /tmp/pwned", False),  # git runs the command
    (checks.upstream, "ext::ssh host", False),
    (checks.upstream, "fd::3", False),
    (checks.upstream, "transport::address", False),
    (checks.upstream, "host::path", False),
    (checks.upstream, "file:///srv/git/arrakis.git", False),
    (checks.upstream, "/srv/git/arrakis.git", False),
    (checks.upstream, "./arrakis.git", False),
    (checks.upstream, "~/arrakis.git", False),
    (checks.upstream, "http://github.com/me/arrakis.git", False),
    (checks.upstream, "git://github.com/me/arrakis.git", False),
    (checks.upstream, "ftp://github.com/me/arrakis.git", False),
    (checks.upstream, "git+ssh://github.com/me/arrakis.git", False),
    (checks.upstream, "HTTPS://github.com/me/arrakis.git", False),
    (checks.upstream, "-oProxyCommand=touch%20/tmp/x:a", False),
    (checks.upstream, "ssh://-oProxyCommand=touch/x", False),
    (checks.upstream, "git@-oProxyCommand=x:a", False),
    (checks.upstream, "ssh://-x@host/a", False),
    (checks.upstream, "https://-x/a", False),
    (checks.upstream, "host:-x", False),
    (checks.upstream, "https://me:hunter2@github.com/me/arrakis.git", False),
    (checks.upstream, "https://me:@github.com/a", False),
    (checks.upstream, "ssh://host:99999/a", False),
    (checks.upstream, "ssh://host:0/a", False),
    (checks.upstream, "ssh://host", False),
    (checks.upstream, "host:", False),
    (checks.upstream, "ssh://host/a b", False),
    (checks.upstream, "git@github.com:me/a.git;touch x", False),
    (checks.upstream, "git@github.com:me/$(id).git", False),
    (checks.upstream, "", False),
    (checks.file_mode, "0644", True),
    (checks.file_mode, "4755", True),
    (checks.file_mode, "0999", False),
    (checks.file_mode, "rw-r--r--", False),
    (checks.interface, "eth0", True),
    (checks.interface, "enx0123456789abcd", False),
    (checks.line, "ato-2020", True),
    (checks.line, "caffè ☕ 2020", True),
    (checks.line, "a b", True),
    (checks.line, "", True),
    (checks.line, "a\nb", False),
    (checks.line, "a\r", False),
    (checks.line, "\x00", False),
    (checks.line, "a\tb", False),
    (checks.line, "\x1b[2J", False),
    (checks.line, "a\x7f", False),
    (checks.line, "a\x85b", False),  # NEL
    (checks.line, "a\u2028b", False),
    (checks.line, "a\u2029b", False),
    (checks.line, "a\x1cb", False),  # str.splitlines() splits on \x1c-\x1e too
    (checks.line, "a\x0bb", False),
    (checks.line, "a\x0cb", False),
    (checks.ssh_public_key, KEY + "\ncommand=\"sh\" " + KEY, False),
    (checks.ssh_public_key, KEY + "\r", False),
    (checks.ssh_public_key, KEY + "\x00", False),
    (checks.ssh_public_key, KEY, True),
    (checks.ssh_public_key, KEY.rsplit(" ", 1)[0], True),
    (checks.ssh_public_key, "ssh-ed25519", False),
    (checks.ssh_public_key, "ssh-ed25519 !!!!", False),
    (checks.ssh_public_key, "ssh-dss " + KEY.split()[1], False),
    (checks.ssh_public_key, "ssh-rsa " + KEY.split()[1], False),
    (checks.timezone, "Europe/Rome", True),
    (checks.timezone, "Europe/Atlantis", False),
]


@pytest.mark.parametrize(("check", "value", "ok"), CASES,
                         ids=[f"{c.__name__}-{v!r}" for c, v, _ in CASES])
def test_check(check: Callable[[str], object], value: str, ok: bool) -> None:
    if ok:
        check(value)
    else:
        with pytest.raises(ValueError):
            check(value)


@pytest.mark.parametrize(("value", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600),
                                                ("1h30m", 5400), ("2m5s", 125)])
def test_duration_seconds(value: str, seconds: int) -> None:
    assert checks.duration_seconds(value) == seconds


def test_file_mode_is_four_digits() -> None:
    assert checks.file_mode("600") == "0600"
