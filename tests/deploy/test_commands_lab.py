"""`write_file` on lab nodes: a write stopped at any instant leaves the old file or the new one,
never a part of it, never readable by others than the new file is; a user cannot turn picl's
writes in their own directories against files that are not theirs."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from picl.lab import exec_argv
from tests.conftest import Lab

pytestmark = pytest.mark.lab

NODE = "node1"
MARKER = "picl-secret-7f3a"
# Sends the content on stdin to a node as one `put` step, the way apply runs every step.
APPLY = """\
import sys
from picl.deploy import ssh_access
from picl.deploy.commands import put, sh
from picl.transport.connection import Connection
from picl.deploy.converge import NodeFailure, apply_node
from picl.spec import User, load

spec, node, path, owner, mode = sys.argv[1:]
if path == "~/.ssh":
    step = sh(ssh_access._ssh_dir(User(name=owner, uid=1100)))
else:
    step = put(path, sys.stdin.read(), owner, owner, mode)
try:
    apply_node(load(spec).node(node), [step], Connection.from_environ())
except NodeFailure as exc:
    sys.exit(str(exc))
"""
# On the node: wait until sftp-server holds a file it has begun to fill, then freeze it there.
FREEZE = """\
for _ in $(seq 3000); do
  for p in $(pgrep -x sftp-server); do
    for f in /proc/$p/fd/*; do
      t=$(readlink "$f") && [ -f "$t" ] && [ "$(stat -c %s "$t")" -gt 0 ] || continue
      kill -STOP "$p" && echo "$p $t" && exit 0
    done
  done
  sleep 0.01
done
exit 1
"""


def apply_argv(lab: Lab, path: str, owner: str = "root", mode: str = "0600") -> tuple:
    return exec_argv(lab.name, [sys.executable, "-c", APPLY, str(lab.spec), NODE, path, owner,
                                mode])


def write(lab: Lab, path: str, content: str, owner: str = "root",
          mode: str = "0600") -> subprocess.CompletedProcess[str]:
    argv, env = apply_argv(lab, path, owner, mode)
    return subprocess.run(argv, env=env, input=content, capture_output=True, text=True,
                          timeout=300)


def state(lab: Lab, path: str) -> tuple[str, str] | None:
    """(mode, sha256) of a file on the node, None if it is absent."""
    out = lab.ssh(NODE, f"[ -e {path} ] && stat -c %a {path} && sha256sum < {path} || true")
    lines = out.stdout.split()
    return (lines[0], lines[1]) if lines else None


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def readable_by_others(lab: Lab) -> str:
    """Every file holding the marker that a user without privileges can read."""
    return lab.ssh(NODE, f"runuser -u nobody -- grep -rlsF --devices=skip {MARKER} "
                         "/etc /run /tmp /var/tmp /home || true").stdout


@pytest.fixture
def clean(lab: Lab) -> Iterator[None]:
    yield
    lab.ssh(NODE, "pkill -CONT -x sftp-server; rm -rf /etc/picl-test* /run/picl/uploads; "
                  "userdel -r mallory 2>/dev/null; true")


BIG = "".join(f"{MARKER} {i:012d}\n" for i in range(600_000))  # 18 MB: many SFTP writes
OLD = "old content\n"


@pytest.mark.parametrize("existing", [True, False], ids=["replaced", "created"])
def test_a_write_killed_mid_upload_leaves_the_old_file(lab: Lab, clean: None,
                                                       existing: bool) -> None:
    path = "/etc/picl-test-wifi.nmconnection"
    if existing:
        lab.ssh(NODE, f"printf %s '{OLD}' > {path} && chmod 0600 {path}")
    before = state(lab, path)
    freezer = subprocess.Popen(
        lab_ssh_argv(lab, FREEZE), stdout=subprocess.PIPE, text=True)
    argv, env = apply_argv(lab, path)
    apply = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    assert apply.stdin is not None
    apply.stdin.write(BIG)
    apply.stdin.close()
    frozen, _ = freezer.communicate(timeout=120)
    try:
        assert frozen, "no upload was seen"
        during, exposed = state(lab, path), readable_by_others(lab)
    finally:
        os.killpg(apply.pid, signal.SIGKILL)  # the apply dies mid-write
        apply.wait()
        lab.ssh(NODE, f"kill -KILL {frozen.split()[0]}", check=False)
    assert during == before, f"{path} was {before}, mid-write {during}"
    assert exposed == ""
    assert state(lab, path) == before
    # The next apply puts the whole file in place; nothing of the first one is left around.
    done = write(lab, path, "new " + MARKER + "\n")
    assert done.returncode == 0, done.stderr
    assert state(lab, path) == ("600", digest("new " + MARKER + "\n"))
    assert lab.ssh(NODE, "ls -A /etc | grep '^.picl-' || true").stdout == ""
    assert readable_by_others(lab) == ""


def lab_ssh_argv(lab: Lab, command: str) -> list[str]:
    from picl.lab import ssh_argv

    return ssh_argv(lab.name, NODE, [command], interactive=False)


def test_owner_and_mode_are_set_before_the_file_is_in_place(lab: Lab, clean: None) -> None:
    path = "/etc/picl-test-mode"
    lab.ssh(NODE, f"printf old > {path} && chmod 0644 {path}")
    done = write(lab, path, MARKER + "\n", mode="0640")
    assert done.returncode == 0, done.stderr
    assert lab.ssh(NODE, f"stat -c '%U %G %a' {path}").stdout.split() == ["root", "root", "640"]


def test_a_file_failing_its_check_is_never_in_place(lab: Lab, clean: None) -> None:
    path = "/etc/sudoers.d/picl-test"
    before = lab.ssh(NODE, "ls -A /etc/sudoers.d").stdout.split()  # the image's own drop-ins
    argv, env = exec_argv(lab.name, [sys.executable, "-c", APPLY.replace(
        "owner, owner, mode)", "owner, owner, mode, check='visudo -cqf')"), str(lab.spec), NODE,
        path, "root", "0440"])
    result = subprocess.run(argv, env=env, input="mallory ALL=(ALL) ALL garbage(\n",
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "not written" in result.stderr
    assert lab.ssh(NODE, f"ls -A /etc/sudoers.d; [ ! -e {path} ]").stdout.split() == before


def test_temporary_files_an_earlier_apply_left_are_removed(lab: Lab, clean: None) -> None:
    lab.ssh(NODE, "touch /etc/.picl-picl-test-left.a1b2c3")
    assert write(lab, "/etc/picl-test-left", "x\n").returncode == 0
    assert lab.ssh(NODE, "ls -A /etc | grep picl-test").stdout.split() == ["picl-test-left"]


@pytest.fixture
def mallory(lab: Lab, clean: None) -> str:
    """A local user who prepared their own home against root's writes; a file of root's."""
    lab.ssh(NODE, "useradd -m mallory && install -d -o mallory -m 0700 ~mallory/.ssh && "
                  "printf 'root only\\n' > /etc/picl-test-victim && "
                  "chmod 0600 /etc/picl-test-victim && mkdir -m 0755 /etc/picl-test-dir")
    return "/home/mallory/.ssh/authorized_keys"


def test_a_symlink_in_place_of_a_file_is_replaced_not_followed(lab: Lab, mallory: str) -> None:
    lab.ssh(NODE, f"runuser -u mallory -- ln -s /etc/picl-test-victim {mallory}")
    done = write(lab, mallory, "ssh-ed25519 AAAA mallory\n", "mallory")
    assert done.returncode == 0, done.stderr
    assert lab.ssh(NODE, "cat /etc/picl-test-victim; stat -c %U /etc/picl-test-victim"
                   ).stdout == "root only\nroot\n"
    assert lab.ssh(NODE, f"stat -c '%F %U %a' {mallory}").stdout.strip() == (
        "regular file mallory 600")


def test_a_directory_of_a_users_is_written_as_that_user(lab: Lab, mallory: str) -> None:
    lab.ssh(NODE, "runuser -u mallory -- sh -c 'rmdir ~/.ssh && ln -s /etc/picl-test-dir ~/.ssh'")
    done = write(lab, mallory, "ssh-ed25519 AAAA mallory\n", "mallory")
    assert done.returncode != 0
    assert "picl does not write there" in done.stderr
    assert lab.ssh(NODE, "ls -A /etc/picl-test-dir").stdout == ""


def test_a_file_of_roots_is_not_written_in_a_users_directory(lab: Lab, mallory: str) -> None:
    done = write(lab, "/home/mallory/.ssh/rc", "echo hi\n", "root")
    assert done.returncode != 0
    assert "picl does not write there" in done.stderr
    assert lab.ssh(NODE, "ls -A /home/mallory/.ssh").stdout == ""


def test_a_users_ssh_directory_is_made_by_that_user(lab: Lab, mallory: str) -> None:
    lab.ssh(NODE, "runuser -u mallory -- sh -c 'rmdir ~/.ssh && ln -s /etc/picl-test-dir ~/.ssh'")
    assert write(lab, "~/.ssh", "", "mallory").returncode != 0
    assert lab.ssh(NODE, "stat -c '%U %a' /etc/picl-test-dir").stdout.split() == ["root", "755"]
    lab.ssh(NODE, "rm ~mallory/.ssh")
    made = write(lab, "~/.ssh", "", "mallory")
    assert made.returncode == 0, made.stderr
    assert lab.ssh(NODE, "stat -c '%U %a' ~mallory/.ssh").stdout.split() == ["mallory", "700"]
