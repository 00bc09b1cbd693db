"""Writing files as data: every file a plan writes goes through `write_file`, whose commands
never carry the content and always replace the file by a rename."""

from __future__ import annotations

import os
import re
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from pyinfra.api import FileUploadCommand, StringCommand

from picl.deploy import confirm
from picl.deploy.commands import (
    UPLOADS,
    install_packages,
    put,
    replaced,
    shell,
    write_file,
)
from picl.deploy.mounts import fstab_transaction
from picl.deploy.plan import plan_node
from picl.deploy.view import ClusterFacts
from picl.spec import Cluster
from tests.deploy.clusters import small_cluster
from tests.deploy.conftest import PAIR, fresh_node

# The spec tests' cluster (every concern), and a file of a user's in their home.
EXTRA = """
[[files]]
path = "/home/federico/.config/spice"
content = "melange\\n"
owner = "federico"
group = "federico"
mode = "0600"
"""
LED_FILES = {"/usr/local/lib/picl/leds/service.py": "print()\n",
             "/etc/systemd/system/picl-leds.service": "[Service]\n"}
# The operations a step may run: each of picl's own writes its files by a rename.
OPERATIONS = {shell, write_file, install_packages, fstab_transaction, confirm.arm}
# A shell redirection into anything but a descriptor or /dev/null writes a file in place.
WRITES = re.compile(r">>?\s*(?!&|/dev/null)\S")


@pytest.fixture
def reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    monkeypatch.chdir(tmp_path)  # managed files' sources are read beside the spec
    return small_cluster(tmp_path, EXTRA)


def first_apply_steps(cluster: Cluster):
    """Every step of the plan of fresh nodes (NetworkManager images), node by node."""
    observed = {}
    for node in cluster.nodes:
        observed[node.name] = fresh_node(node.name)
        observed[node.name].units["NetworkManager.service"] = ("enabled", "active")
        observed[node.name].existing.add("/usr/sbin/NetworkManager")
    shared = ClusterFacts(observed=observed, github_keys={"flucifredi": []},
                          cluster_keys={"federico": PAIR}, led_service=LED_FILES)
    for node in cluster.nodes:
        plan = plan_node(cluster, node, observed[node.name], shared)
        assert not plan.blocked, plan.blocked
        for change in plan.changes:
            for step in change.steps:
                yield node.name, change.resource, step


def test_every_file_a_plan_writes_is_replaced_by_write_file(reference: Cluster) -> None:
    written = set()
    for node, resource, step in first_apply_steps(reference):
        assert step.operation in OPERATIONS, f"{node}: {resource}: {step.name}"
        if step.operation is write_file:
            written.add(step.arguments["dest"])
        for command in step.arguments.get("commands", []):
            raw = command.get_raw_value() if isinstance(command, StringCommand) else command
            assert not WRITES.search(raw), f"{node}: {resource}: writes in place: {raw}"
    assert {"/etc/hosts", "/etc/hostname", "/etc/timezone", "/etc/ssh/ssh_known_hosts",
            "/etc/chrony/chrony.conf", "/etc/exports.d/picl.exports", "/etc/motd", "/etc/issue.net",
            "/etc/sudoers.d/picl-federico", "/home/federico/.ssh/authorized_keys",
            "/home/federico/.ssh/id_ed25519", "/home/federico/.ssh/id_ed25519.pub",
            "/home/federico/.config/spice",
            "/etc/NetworkManager/system-connections/picl-wifi.nmconnection",
            *LED_FILES} <= written


def commands(step) -> list:
    return list(write_file._inner(**step.arguments))


SECRET = "psk=correct horse battery staple\n"


def test_write_file_never_puts_the_content_in_a_command() -> None:
    prepare, upload, replace = commands(put("/etc/NetworkManager/system-connections/w",
                                            SECRET, mode="0600"))
    assert isinstance(upload, FileUploadCommand)
    assert upload.dest.startswith(UPLOADS + "/")
    assert upload.src.getvalue() == SECRET.encode()
    for command in (prepare, replace):
        assert "correct horse" not in command.get_raw_value()


def test_write_file_names_the_file_and_its_final_attributes() -> None:
    *_, replace = commands(put("/etc/sudoers.d/picl-f", "f ALL=(ALL:ALL) ALL\n", "root", "root",
                               "0440", check="visudo -cqf"))
    head = replace.get_raw_value().split("say()")[0]
    assert "D=/etc/sudoers.d\nN=picl-f\nO=root\nG=root\nM=0440\nC='visudo -cqf'\n" in head


def test_each_run_uploads_to_a_place_of_its_own() -> None:
    step = put("/etc/motd", "hi\n")
    assert commands(step)[1].dest != commands(step)[1].dest


def test_content_is_read_afresh_on_each_run() -> None:
    step = put("/etc/motd", "hi\n")
    for _ in range(2):  # a plan's check, then the run: neither consumes the other's stream
        assert commands(step)[1].src.read() == b"hi\n"


def test_bytes_are_written_as_they_are() -> None:
    from io import BytesIO
    _, upload, _ = list(write_file._inner(src=BytesIO(b"\xff\n"), dest="/etc/x"))
    assert upload.src.getvalue() == b"\xff\n"
    assert isinstance(put("/etc/x", "").arguments["src"], StringIO)


@pytest.mark.skipif(os.geteuid() != 0, reason="the file is root's")
def test_replaced_makes_stdin_the_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "known_hosts"
    target.write_text("old\n")
    target.chmod(0o644)
    script = replaced(str(target), "0600")
    subprocess.run(["sh", "-c", script], input=b"new\n", check=True)
    assert target.read_text() == "new\n"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["known_hosts"]
