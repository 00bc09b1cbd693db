"""fstab on lab nodes: the transaction, its rollback and the dead-man switch, on real systemd.

Lab nodes have no NFS in their kernel and cannot run automount units, so share entries are
checked by their configuration and by the failure paths they must survive (a server that
does not answer), while tmpfs entries show real mounts. Every test ends with a reboot of the
node it changed, which must come back and answer SSH.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from picl.deploy.confirm import REBOOTED
from tests.conftest import running_lab, session_lab_name
from tests.deploy.risky import SHARE, Risky, mount, picl_lab

pytestmark = pytest.mark.lab

SCRATCH = mount("node1", "tmpfs", "/scratch", "tmpfs", "size=1m,nofail")
MARK = "# picl: managed by picl (cluster.toml [[mounts]] {where}); edit the spec, not this line\n"
# A mount helper that takes its time, so a test can act in the middle of the transaction.
SLOW_HELPER = "printf '#!/bin/sh\\ntouch /run/picl-test-mounting\\nsleep 25\\n' > /sbin/mount.slow"
SLOW = mount("node2", "slow", "/slow", "slow", "defaults")


@pytest.fixture(scope="module")
def risky(lab_host: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Risky]:
    """A lab of its own, converged to the base spec: later plans are only about fstab."""
    with running_lab(session_lab_name("mounts")) as lab:
        risky = Risky(lab, tmp_path_factory.mktemp("mounts"))
        first = risky.apply(risky.spec())
        assert first.returncode == 0, first.stdout + first.stderr
        yield risky


def test_share_and_mount_applied_listed_and_kept_after_reboot(risky: Risky) -> None:
    lab = risky.lab
    before = risky.fstab("node1")
    spec = risky.spec(SHARE + SCRATCH)
    plan = risky.picl(spec, "plan", "--node", "node1")
    assert "+10.1.10.240:/srv/shared /shared nfs rw,_netdev,nofail,x-systemd.automount," \
           "x-systemd.mount-timeout=30s 0 0" in plan.stdout
    assert "+tmpfs /scratch tmpfs size=1m,nofail 0 0" in plan.stdout
    result = risky.apply(spec, "node1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert lab.ssh("node1", "findmnt --fstab -n -o SOURCE --mountpoint /shared").stdout == \
        "10.1.10.240:/srv/shared\n"
    assert lab.ssh("node1", "findmnt -n -o FSTYPE --mountpoint /scratch").stdout == "tmpfs\n"
    backup = lab.ssh("node1", "base64 -w0 /var/backups/picl/fstab.1").stdout
    assert base64.b64decode(backup) == before
    risky.reboot("node1")
    assert lab.ssh("node1", "findmnt -n -o FSTYPE --mountpoint /scratch").stdout == "tmpfs\n"
    again = risky.picl(spec, "plan", "--detailed-exitcode", "--node", "node1")
    assert again.returncode == 0, again.stdout + again.stderr


def test_nfs_server_down_the_node_still_boots(risky: Risky) -> None:
    lab = risky.lab
    spec = risky.spec(SHARE + SCRATCH)
    assert risky.apply(spec, "node1").returncode == 0
    picl_lab(lab, "lab", "kill", "node0")  # the share's server, gone without a word
    try:
        risky.reboot("node1")
        state = lab.ssh("node1", "systemctl is-system-running --wait", check=False).stdout
        assert state.strip() in ("running", "degraded")
        assert "10.1.10.240:/srv/shared" in lab.ssh("node1", "cat /etc/fstab").stdout
    finally:
        picl_lab(lab, "lab", "start", "node0")


def test_missing_device_leaves_fstab_identical(risky: Risky) -> None:
    lab = risky.lab
    before = risky.fstab("node1")
    spec = risky.spec(SHARE + SCRATCH + mount("node1", "LABEL=picl-no-such-disk", "/data", "ext4"))
    result = risky.apply(spec, "node1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "findmnt --verify: /data: unreachable on boot required source: " \
           "LABEL=picl-no-such-disk" in result.stdout
    assert risky.fstab("node1") == before
    assert lab.ssh("node1", "test -e /data", check=False).returncode == 1
    risky.reboot("node1")
    assert risky.fstab("node1") == before


def test_every_foreign_byte_is_kept(risky: Risky) -> None:
    foreign = (b"# /etc/fstab: static file system information.\n"
               b"#\n\n"
               b"proc\t\t/proc\tproc\tdefaults\t0\t0\n"
               b"LABEL=my\\040disk  /mnt/my\\040disk\text4   noauto,nofail 0 2\n"
               b"# caf\xe9: not UTF-8\n"
               b"  UUID=0a1b-2c3d\t/mnt/usb vfat noauto,nofail")  # no newline at the end
    risky.write_fstab("node2", foreign)
    result = risky.apply(risky.spec(mount("node2", "tmpfs", "/scratch", "tmpfs")), "node2")
    assert result.returncode == 0, result.stdout + result.stderr
    ours = MARK.format(where="/scratch") + "tmpfs /scratch tmpfs defaults,nofail 0 0\n"
    assert risky.fstab("node2") == foreign + b"\n" + ours.encode()
    risky.reboot("node2")
    assert risky.fstab("node2") == foreign + b"\n" + ours.encode()


def test_removal_while_busy_leaves_fstab_untouched(risky: Risky) -> None:
    lab = risky.lab
    assert risky.apply(risky.spec(SHARE + SCRATCH), "node1").returncode == 0
    before = risky.fstab("node1")
    lab.ssh("node1", "systemd-run --unit=picl-test-busy -p WorkingDirectory=/scratch sleep 600")
    try:
        result = risky.apply(risky.spec(SHARE), "node1")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "/scratch: target is busy" in result.stdout
        assert "/etc/fstab left as it was" in result.stdout
        assert risky.fstab("node1") == before
        assert lab.ssh("node1", "findmnt -n -o FSTYPE --mountpoint /scratch").stdout == "tmpfs\n"
    finally:
        lab.ssh("node1", "systemctl stop picl-test-busy")
    result = risky.apply(risky.spec(SHARE), "node1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert b"/scratch" not in risky.fstab("node1")
    assert lab.ssh("node1", "findmnt --mountpoint /scratch", check=False).returncode == 1
    risky.reboot("node1")


def test_conflicting_foreign_line_is_shown_kept_and_fails_the_node(risky: Risky) -> None:
    lab = risky.lab
    # Its password is shown nowhere: not in the plan (text or JSON), nor in apply's report.
    foreign = b"//nas/archive /shared cifs noauto,username=bob,password=hunter2 0 0\n"
    risky.write_fstab("node2", foreign)
    spec = risky.spec(SHARE + mount("node2", "tmpfs", "/scratch", "tmpfs"))
    plan = risky.picl(spec, "plan", "--node", "node2")
    assert plan.returncode == 1
    assert "! mount /shared: blocked: /shared: /etc/fstab already has '//nas/archive /shared " \
           "cifs noauto,username=bob,password=(sensitive) 0 0', which picl did not write" \
           in plan.stdout
    as_json = risky.picl(spec, "plan", "--node", "node2", "--json")
    assert "password=(sensitive)" in as_json.stdout
    result = risky.apply(spec, "node2")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "node2: FAILED: mount /shared: /shared: /etc/fstab already has" in result.stdout
    for said in (plan, as_json, result):
        assert "hunter2" not in said.stdout + said.stderr
    after = risky.fstab("node2")
    assert after.startswith(foreign) and b"tmpfs /scratch tmpfs" in after  # the rest was made
    risky.reboot("node2")
    assert risky.fstab("node2") == after
    lab.ssh("node2", "sed -i '\\|^//nas/archive|d' /etc/fstab")


def _slow_apply(risky: Risky) -> tuple[subprocess.Popen[str], bytes, bytes]:
    """Start an apply on node2 whose mount hangs; return it once the node is mounting, with
    the fstab before and the one the apply writes."""
    lab = risky.lab
    lab.ssh("node2", f"{SLOW_HELPER} && chmod +x /sbin/mount.slow && rm -f /run/picl-test-mounting")
    before = b"# node2, before the slow mount\n"
    risky.write_fstab("node2", before)
    after = before + (MARK.format(where="/slow") + "slow /slow slow defaults 0 0\n").encode()
    apply = subprocess.Popen(risky.argv("apply", "--yes", "--node", "node2"),
                             env=risky.environ(risky.spec(SLOW)), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while lab.ssh("node2", "test -e /run/picl-test-mounting", check=False).returncode != 0:
        assert apply.poll() is None, apply.communicate()[0]
        assert time.monotonic() < deadline, "the apply never reached its mount"
        time.sleep(0.2)
    return apply, before, after


def _wait_reverted(risky: Risky, node: str) -> str:
    deadline = time.monotonic() + 120
    while True:
        # The newest switch is the one the test's apply armed.
        found = risky.lab.ssh(node, "d=$(ls -1dt /var/lib/picl/rollback/*/ | head -n1); "
                                    'cat "$d/reverted" 2>/dev/null', check=False)
        if found.stdout.strip():
            return found.stdout.strip()
        assert time.monotonic() < deadline, f"{node} never reverted"
        time.sleep(1)


def test_apply_killed_mid_transaction_leaves_old_or_new_then_old(risky: Risky) -> None:
    apply, before, after = _slow_apply(risky)
    os.killpg(apply.pid, signal.SIGKILL)  # picl and its SSH sessions, mid-mount
    apply.wait()
    assert risky.fstab("node2") in (before, after)
    # Nobody confirms: the node puts the old file back by itself.
    assert "not confirmed within" in _wait_reverted(risky, "node2")
    assert risky.fstab("node2") == before
    risky.reboot("node2")
    assert risky.fstab("node2") == before


def test_power_cut_mid_transaction_reverts_at_boot(risky: Risky) -> None:
    lab = risky.lab
    apply, before, after = _slow_apply(risky)
    old_boot = risky.boot_id("node2")
    picl_lab(lab, "lab", "kill", "node2")  # mid-mount, the new file already in place
    picl_lab(lab, "lab", "start", "node2")
    risky.wait_booted("node2", old_boot)
    assert _wait_reverted(risky, "node2") == REBOOTED
    output, _ = apply.communicate(timeout=300)
    assert apply.returncode == 1, output
    assert "node2: ROLLED BACK:" in output and REBOOTED in output
    assert risky.fstab("node2") == before
    assert lab.ssh("node2", "systemctl is-system-running --wait", check=False).stdout.strip() in (
        "running", "degraded")
    lab.ssh("node2", "rm -f /sbin/mount.slow")


def test_the_plan_is_empty_after_a_good_apply(risky: Risky) -> None:
    spec = risky.spec(SHARE + SCRATCH)
    assert risky.apply(spec).returncode == 0
    result = risky.picl(spec, "plan", "--detailed-exitcode")
    assert result.returncode == 0, result.stdout + result.stderr


# A mount helper slower than the whole window to confirm in, that then mounts for real.
SLOWER_HELPER = ("printf '#!/bin/sh\\nsleep 15\\nexec mount -i -t tmpfs -o size=1m slower \"$2\"\\n'"
                 " > /sbin/mount.slower && chmod +x /sbin/mount.slower")
SLOWER = mount("node2", "slower", "/slower", "slower", "defaults,nofail")


def test_a_change_slower_than_the_window_is_confirmed(risky: Risky) -> None:
    """The window opens as the change ends: a mount taking 15 s of a 10 s window is confirmed
    (a slow SD card, an emulated machine). Opened when the switch was armed, it expired
    mid-mount and the node undid a change that was going well."""
    lab = risky.lab
    lab.ssh("node2", SLOWER_HELPER)
    try:
        result = risky.apply(risky.spec(SHARE + SCRATCH + SLOWER), "node2")
        assert result.returncode == 0, result.stdout + result.stderr
        assert lab.ssh("node2", "findmnt -n -o FSTYPE --mountpoint /slower").stdout == "tmpfs\n"
        risky.reboot("node2")
        lab.ssh("node2", "systemctl is-system-running --wait", check=False)  # the mount's 15 s
        assert lab.ssh("node2", "findmnt -n -o FSTYPE --mountpoint /slower").stdout == "tmpfs\n"
    finally:  # the module's later tests start from the reference mounts
        assert risky.apply(risky.spec(SHARE + SCRATCH), "node2").returncode == 0
        lab.ssh("node2", "rm -f /sbin/mount.slower")
