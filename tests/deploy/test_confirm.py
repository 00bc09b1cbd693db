"""The dead-man switch's scripts, run here in a scratch directory with stand-ins for systemd.

What only a node can show (the timer firing, the SSH session lost, a power cut) is tested on
the lab in test_mounts_lab.py and test_links_lab.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from picl.deploy import confirm, ssh_access
from picl.deploy.changes import Guard
from picl.deploy.commands import put, replaced, sh, shell
from picl.facts.node import Account
from picl.spec import Cluster
from tests.deploy.conftest import fresh_node, view

FAKES = {  # commands the scripts call that must not reach this machine's systemd or journal
    "systemctl": 'echo "systemctl $*" >> "$CALLS"',
    "logger": 'echo "logger $*" >> "$CALLS"',
    "systemd-run": 'echo "systemd-run $*" >> "$CALLS"',
}


class Node:
    """A scratch directory standing in for a node's disk, and a shell to run scripts in it."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch):
        self.root = root
        monkeypatch.setattr(confirm, "ROLLBACK", str(root / "rollback"))
        bin_dir = root / "bin"
        bin_dir.mkdir()
        for name, body in FAKES.items():
            (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
            (bin_dir / name).chmod(0o755)
        self.calls = root / "calls"
        self.env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(self.calls)}

    def sh(self, script: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", "-c", script, "sh", *args], env=self.env, cwd=self.root,
                              capture_output=True, text=True, timeout=60)

    def arm(self, token: str, guard: Guard) -> None:
        (command,) = confirm.arm._inner(token=token, timeout=30, guard=guard)
        # The boot unit goes to /etc on a node: here only the lines up to it run.
        script = str(command).split("\necho ", 1)[0] + "\n"
        script += f"printf '%s' {_quote(confirm.revert_script(token, guard))} > "
        script += f"{confirm.ROLLBACK}/{token}/revert"
        result = self.sh(script)
        assert result.returncode == 0, result.stderr

    def revert(self, token: str, reason: str) -> None:
        result = self.sh(f"sh {confirm.ROLLBACK}/{token}/revert \"$1\"", reason)
        assert result.returncode == 0, result.stderr


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Node:
    return Node(tmp_path, monkeypatch)


def answer(result: subprocess.CompletedProcess[str]) -> confirm.Answer | None:
    return confirm.parse_answer(result.stdout.splitlines())


def test_revert_puts_back_every_file_byte_for_byte(node: Node) -> None:
    kept, created = node.root / "fstab", node.root / "new.nmconnection"
    kept.write_bytes(b"# caf\xe9\nproc /proc proc defaults 0 0")
    guard = Guard(files=(str(kept), str(created)), restore=("echo restored > restored",))
    node.arm("t1", guard)
    kept.write_bytes(b"changed\n")
    created.write_text("a file the change added\n")
    node.revert("t1", "not confirmed within 30s of the change")
    assert kept.read_bytes() == b"# caf\xe9\nproc /proc proc defaults 0 0"
    assert not created.exists()
    switch = node.root / "rollback" / "t1"
    assert (switch / "restored").read_text() == "restored\n"  # restore ran in the switch's dir
    assert (switch / "reverted").read_text() == "not confirmed within 30s of the change\n"
    assert answer(node.sh(confirm.confirm_command("t1"))) == confirm.Answer(
        "reverted", "not confirmed within 30s of the change")


def test_a_confirmed_switch_never_reverts(node: Node) -> None:
    path = node.root / "hosts"
    path.write_text("old\n")
    node.arm("t2", Guard(files=(str(path),)))
    path.write_text("new\n")
    assert answer(node.sh(confirm.confirm_command("t2"))) == confirm.Answer("confirmed")
    node.revert("t2", "the timer, too late")
    assert path.read_text() == "new\n"
    assert "systemctl stop picl-rollback-t2.timer" in node.calls.read_text()
    assert answer(node.sh(confirm.confirm_command("t2"))) == confirm.Answer("confirmed")


def test_revert_now_answers_reverted_with_the_reason(node: Node) -> None:
    path = node.root / "fstab"
    path.write_text("old\n")
    node.arm("t3", Guard(files=(str(path),)))
    path.write_text("new\n")
    result = node.sh(confirm.revert_command("t3", "mount: /data: bad option"))
    assert answer(result) == confirm.Answer("reverted", "mount: /data: bad option")
    assert path.read_text() == "old\n"


def test_a_switch_never_armed_says_so(node: Node) -> None:
    assert answer(node.sh(confirm.revert_command("t4", "failed"))) == confirm.Answer("none")


def test_at_boot_only_the_files_go_back(node: Node) -> None:
    path = node.root / "fstab"
    path.write_text("old\n")
    node.arm("t5", Guard(files=(str(path),), restore=("echo restored > restored",)))
    path.write_text("new\n")
    node.env["PICL_AT_BOOT"] = "1"
    node.revert("t5", confirm.REBOOTED)
    assert path.read_text() == "old\n"
    assert not (node.root / "rollback" / "t5" / "restored").exists()


def test_the_timer_is_armed_after_the_files_are_saved() -> None:
    guard = Guard(files=("/etc/fstab",), capture=("nmcli -t device > nm-active",))
    (command,) = confirm.arm._inner(token="abc", timeout=45, guard=guard)
    text = str(command)
    assert text.index("cp -a /etc/fstab") < text.index("nmcli -t device") < text.index(
        "systemd-run")
    # Armed, the timer gives the change itself time to end: the window opens after it.
    assert f"--unit=picl-rollback-abc --on-active={confirm.change_limit(45)}s" in text
    assert "the change never ended" in text
    assert f"systemctl enable --quiet {confirm.BOOT_UNIT}" in text


def test_guards_add_up_without_repeats() -> None:
    a = Guard(files=("/etc/fstab",), restore=("systemctl daemon-reload",))
    b = Guard(files=("/etc/x", "/etc/fstab"), capture=("c",), restore=("systemctl daemon-reload",
                                                                        "r"))
    assert a + b == Guard(("/etc/fstab", "/etc/x"), ("c",), ("systemctl daemon-reload", "r"))


@pytest.mark.parametrize(("lines", "expected"), [
    (["noise", "picl-switch confirmed"], confirm.Answer("confirmed")),
    (["picl-switch reverted not confirmed within 60s"],
     confirm.Answer("reverted", "not confirmed within 60s")),
    (["picl-switch none"], confirm.Answer("none")),
    (["nothing here"], None),
])
def test_answers(lines: list[str], expected: confirm.Answer | None) -> None:
    assert confirm.parse_answer(lines) == expected


@pytest.mark.parametrize(("login", "guarded"), [("federico", True), ("root", False)])
def test_the_keys_picl_logs_in_with_change_under_the_switch(
        cluster: Cluster, login: str, guarded: bool) -> None:
    observed = fresh_node()
    observed.accounts["federico"] = Account("federico", 1000, 1000, "/home/federico", "/bin/bash")
    found = {c.resource: c for c in ssh_access.changes(
        view(cluster, "node1", observed, github_keys={"flucifredi": []}, login_user=login))}
    change = found["authorized_keys federico"]
    assert change.guard == (Guard(files=("/home/federico/.ssh/authorized_keys",))
                            if guarded else None)


def test_the_revert_script_appears_whole_once_the_saved_files_are_on_disk() -> None:
    # The boot unit runs every revert script it finds: one must never put back half a file.
    (command,) = confirm.arm._inner(token="abc", timeout=45, guard=Guard(files=("/etc/fstab",)))
    text = str(command)
    revert = f"{confirm.ROLLBACK}/abc/revert"
    assert text.index("cp -a /etc/fstab") < text.index("\nsync\n") < text.index(revert)
    assert f"> {revert}" not in text and replaced(revert) in text
    assert f"> /etc/systemd/system/{confirm.BOOT_UNIT}" not in text


def test_the_window_opens_once_the_change_has_ended(node: Node) -> None:
    """The window is the node's time to hear from picl after the change, however long the
    change took (a slow card, an emulated machine): its timer starts only then, and the
    arming one stops."""
    path = node.root / "hosts"
    path.write_text("old\n")
    node.arm("t6", Guard(files=(str(path),)))
    node.calls.write_text("")
    result = node.sh(confirm.open_window("t6", 30))
    assert result.returncode == 0, result.stderr
    calls = node.calls.read_text().splitlines()
    assert calls[0].startswith("systemd-run --quiet --unit=picl-rollback-t6-window "
                               "--on-active=30s")
    assert "not confirmed within 30s of the change" in calls[0]
    assert calls[1:] == ["systemctl stop picl-rollback-t6.timer"]
    assert answer(node.sh(confirm.confirm_command("t6"))) == confirm.Answer("confirmed")
    assert ("systemctl stop picl-rollback-t6.timer picl-rollback-t6-window.timer"
            in node.calls.read_text())


@pytest.mark.parametrize("ended", ["confirmed", "reverted"])
def test_no_window_for_a_switch_that_has_ended(node: Node, ended: str) -> None:
    node.arm("t7", Guard(files=(str(node.root / "hosts"),)))
    (node.root / "rollback" / "t7" / ended).write_text("")
    node.calls.write_text("")
    assert node.sh(confirm.open_window("t7", 30)).returncode == 0
    assert node.calls.read_text() == ""


@pytest.mark.parametrize(
    ("commands", "status", "ran"),
    [
        (["echo a >> ran", "echo b >> ran"], 0, "a\nb\n"),
        (["echo a >> ran", "exit 3", "echo c >> ran"], 3, "a\n"),  # the first failure stops
        (["false", "echo b >> ran"], 1, ""),
    ],
)  # fmt: skip
def test_a_last_shell_step_is_one_command_that_opens_the_window(
    node: Node, commands: list[str], status: int, ran: str
) -> None:
    """The network's activation can cut picl off after its first command: picl would never
    send the next one. As one command, the node runs it to the end and opens the window
    itself, whether or not picl hears; its commands and their status are kept."""
    first = sh("echo one")
    steps = confirm.guarded_steps("t8", 30, Guard(), [first, sh(*commands)])
    assert [s.operation for s in steps] == [confirm.arm, shell, shell]
    assert steps[1] is first
    (whole,) = steps[2].arguments["commands"]
    node.arm("t8", Guard(files=(str(node.root / "hosts"),)))
    node.calls.write_text("")
    assert node.sh(whole).returncode == status
    assert ((node.root / "ran").read_text() if ran else "") == ran
    assert "--unit=picl-rollback-t8-window" in node.calls.read_text()


def test_after_any_other_step_the_window_is_a_step_of_its_own() -> None:
    last = put("/etc/hosts", "127.0.0.1 localhost\n")
    steps = confirm.guarded_steps("t9", 30, Guard(), [last])
    assert steps[1] is last
    assert steps[2].arguments == {"commands": [confirm.open_window("t9", 30)]}
