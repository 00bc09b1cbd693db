"""fstab as data: byte-for-byte round trips, reading as libmount reads, and editing only picl's lines."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from picl.deploy.fstab import (
    Fstab,
    FstabConflicts,
    FstabEntry,
    fstab_entries,
    plan_fstab,
    shown,
)
from tests.deploy.clusters import small_cluster

RASPBERRY_PI_OS = (
    "proc            /proc           proc    defaults          0       0\n"
    "PARTUUID=4e639091-01  /boot/firmware  vfat    defaults          0       2\n"
    "PARTUUID=4e639091-02  /               ext4    defaults,noatime  0       1\n"
    "# a swapfile is not a swap partition, no line here\n"
    "#   use  dphys-swapfile swap[on|off]  for that\n"
)

NFS = "rw,_netdev,nofail,x-systemd.automount,x-systemd.mount-timeout=30s"
SHARED = FstabEntry("10.1.10.240:/srv/shared", "/shared", "nfs", NFS, origin="cluster.toml [[shares]] shared")
SCRATCH = FstabEntry("LABEL=scratch", "/scratch", "ext4", "defaults,nofail", origin="cluster.toml [[mounts]] /scratch")
SHARED_MARK = "# picl: managed by picl (cluster.toml [[shares]] shared); edit the spec, not this line\n"
SHARED_LINE = f"10.1.10.240:/srv/shared /shared nfs {NFS} 0 0\n"
SCRATCH_MARK = "# picl: managed by picl (cluster.toml [[mounts]] /scratch); edit the spec, not this line\n"
SCRATCH_LINE = "LABEL=scratch /scratch ext4 defaults,nofail 0 0\n"

NASTY = {
    "empty": "",
    "one newline": "\n",
    "blank lines only": "\n\n  \n\t\n",
    "raspberry pi os": RASPBERRY_PI_OS,
    "no final newline": "proc /proc proc defaults 0 0",
    "comment last, no final newline": "UUID=0a1b / ext4 defaults 0 1\n# the end",
    "tabs and odd spacing": "  UUID=0a1b\t\t/  ext4 \t defaults,noatime\t0 1   \n\t# indented comment\n",
    "escaped spaces, tabs, backslashes": (
        "LABEL=my\\040disk /mnt/my\\040disk ext4 defaults 0 2\n"
        "/dev/sdb1 /mnt/tab\\011here vfat defaults 0 0\n"
        "/srv /mnt/back\\134slash none bind 0 0\n"
    ),
    "identifiers": (
        "UUID=3e6be9de-8139-11d1-9106-a43f08d823a6 /data ext4 defaults 0 2\n"
        "LABEL=t-home2 /home ext4 defaults,auto_da_alloc 0 2\n"
        'UUID="A40D-85E7" /boot/efi vfat umask=0077 0 1\n'
        "PARTUUID=4e639091-02 / ext4 defaults 0 1\n"
        "PARTLABEL=scratch /scratch xfs defaults 0 0\n"
    ),
    "fewer than six fields": "/dev/sda1 /a ext4\n/dev/sda2 /b ext4 defaults\n/dev/sda3 /c ext4 defaults 1\n",
    "crlf": "proc /proc proc defaults 0 0\r\n# written on windows\r\n/dev/sda1 /a ext4\r\n",
    "lines mount ignores": "garbage\n/dev/only-two /fields\n/dev/sda3 /c ext4 defaults 1 x\n",
    "comment after the fields": "node0:/srv/shared /shared nfs rw 0 0 # by hand\n",
    "swap": "/swapfile none swap sw 0 0\n/dev/zram0 swap swap defaults 0 0\n",
    "not ascii": "LABEL=données /données ext4 defaults 0 2\n",
    "picl's own lines": RASPBERRY_PI_OS + SHARED_MARK + SHARED_LINE,
    "a stray marker": SHARED_MARK,
}


@pytest.mark.parametrize("text", NASTY.values(), ids=NASTY.keys())
def test_round_trip_is_byte_for_byte(text: str) -> None:
    assert Fstab.parse(text).text == text
    assert Fstab.parse(text.encode()).data == text.encode()
    if "picl" not in text:
        assert not plan_fstab(text, []).changes  # nothing wanted, nothing of picl's: untouched


def test_bytes_that_are_not_utf8_survive_an_edit() -> None:
    data = b"# caf\xe9 (latin-1)\n/dev/sda1 /caf\xe9 ext4 defaults 0 0\n"
    assert Fstab.parse(data).data == data
    edit = plan_fstab(data, [SHARED])
    assert edit.data == data + (SHARED_MARK + SHARED_LINE).encode()


def _findmnt(text: str, tmp_path: Path) -> list[tuple]:
    """What libmount reads from a file: (source, target, type, options, freq, passno)."""
    path = tmp_path / "fstab"
    path.write_text(text)
    out = subprocess.run(
        ["findmnt", "--tab-file", str(path), "-J", "-o", "SOURCE,TARGET,FSTYPE,OPTIONS,FREQ,PASSNO"],
        capture_output=True, text=True,
    ).stdout
    found = json.loads(out)["filesystems"] if out.strip() else []
    return [(f["source"], f["target"], f["fstype"], f["options"] or "defaults", f["freq"], f["passno"])
            for f in found]


@pytest.mark.skipif(shutil.which("findmnt") is None, reason="needs findmnt (util-linux)")
@pytest.mark.parametrize("text", NASTY.values(), ids=NASTY.keys())
def test_entries_are_what_libmount_reads(text: str, tmp_path: Path) -> None:
    ours = [(e.what, e.where, e.type, e.options, e.dump, e.passno) for e in Fstab.parse(text).entries]
    assert ours == _findmnt(text, tmp_path)


@pytest.mark.parametrize(("line", "entry"), [
    ("LABEL=my\\040disk /mnt/my\\040disk ext4", FstabEntry("LABEL=my disk", "/mnt/my disk", "ext4")),
    ("/dev/sdb1\t/mnt/tab\\011here vfat defaults 0 0", FstabEntry("/dev/sdb1", "/mnt/tab\there", "vfat")),
    ("/srv /mnt/back\\134slash none bind", FstabEntry("/srv", "/mnt/back\\slash", "none", "bind")),
    ("UUID=0a1b / ext4 defaults,noatime 0 1", FstabEntry("UUID=0a1b", "/", "ext4", "defaults,noatime", 0, 1)),
    ("/dev/sda3 /c ext4 defaults 1", FstabEntry("/dev/sda3", "/c", "ext4", "defaults", 1, 0)),
])
def test_fields_are_decoded_and_encoded_back(line: str, entry: FstabEntry) -> None:
    (parsed,) = Fstab.parse(line).entries
    assert parsed == entry
    assert Fstab.parse(entry.render()).entries == [entry]


@pytest.mark.parametrize(("entry", "system"), [
    (FstabEntry("PARTUUID=1-02", "/", "ext4"), True),
    (FstabEntry("PARTUUID=1-01", "/boot", "vfat"), True),
    (FstabEntry("PARTUUID=1-01", "/boot/firmware/", "vfat"), True),
    (FstabEntry("proc", "/proc", "proc"), True),
    (FstabEntry("/swapfile", "none", "swap", "sw"), True),
    (FstabEntry("/dev/zram0", "swap", "swap"), True),
    (FstabEntry("/dev/sda1", "/boot/firmware/extra", "vfat"), False),
    (SHARED, False),
])
def test_system_entries(entry: FstabEntry, system: bool) -> None:
    assert entry.system is system


# Edits as data: (current text, desired entries, new text).
EDITS = {
    "add to the stock file": (
        RASPBERRY_PI_OS, [SHARED, SCRATCH],
        RASPBERRY_PI_OS + SHARED_MARK + SHARED_LINE + SCRATCH_MARK + SCRATCH_LINE,
    ),
    "add to an empty file": ("", [SHARED], SHARED_MARK + SHARED_LINE),
    "add after a last line without newline": (
        "proc /proc proc defaults 0 0", [SHARED], "proc /proc proc defaults 0 0\n" + SHARED_MARK + SHARED_LINE,
    ),
    "nothing to do": (
        RASPBERRY_PI_OS + SHARED_MARK + SHARED_LINE, [SHARED], RASPBERRY_PI_OS + SHARED_MARK + SHARED_LINE,
    ),
    "update in place, foreign lines around it kept": (
        "# mine\n" + SHARED_MARK + "10.1.10.240:/srv/shared /shared nfs rw 0 0\n/dev/sda1\t/data  ext4\n",
        [SHARED],
        "# mine\n" + SHARED_MARK + SHARED_LINE + "/dev/sda1\t/data  ext4\n",
    ),
    "update the last line, still without newline": (
        SHARED_MARK + "10.1.10.240:/srv/shared /shared nfs rw 0 0", [SHARED], SHARED_MARK + SHARED_LINE[:-1],
    ),
    "remove picl's entry and its marker only": (
        RASPBERRY_PI_OS + SHARED_MARK + SHARED_LINE + "# after\n", [], RASPBERRY_PI_OS + "# after\n",
    ),
    "adopt an identical entry written by hand": (
        "node0-typed\t /a ext4\n10.1.10.240:/srv/shared\t/shared/   nfs  " + NFS + "\n",
        [SHARED],
        "node0-typed\t /a ext4\n" + SHARED_MARK + "10.1.10.240:/srv/shared\t/shared/   nfs  " + NFS + "\n",
    ),
    "a marker whose entry was deleted by hand goes": (
        "# a\n" + SHARED_MARK + "# b\n", [], "# a\n# b\n",
    ),
    "a marker whose entry was deleted, the entry comes back": (
        SHARED_MARK + "\n", [SHARED], "\n" + SHARED_MARK + SHARED_LINE,
    ),
    "a duplicate of picl's entry goes": (
        SHARED_MARK + SHARED_LINE + "# x\n" + SHARED_MARK + SHARED_LINE, [SHARED], SHARED_MARK + SHARED_LINE + "# x\n",
    ),
    "a new origin rewrites the marker only": (
        SHARED_MARK.replace("shared)", "old)") + SHARED_LINE, [SHARED], SHARED_MARK + SHARED_LINE,
    ),
    "a marker above a system entry gives picl nothing": (
        SHARED_MARK + "PARTUUID=4e639091-02 / ext4 defaults 0 1\n", [],
        SHARED_MARK + "PARTUUID=4e639091-02 / ext4 defaults 0 1\n",
    ),
}


@pytest.mark.parametrize(("current", "desired", "expected"), EDITS.values(), ids=EDITS.keys())
def test_edits(current: str, desired: list[FstabEntry], expected: str) -> None:
    edit = plan_fstab(current, desired)
    assert edit.text == expected
    assert edit.changes is (expected != current)
    assert not edit.conflicts
    assert not plan_fstab(edit.text, desired).changes  # converged: the next plan is empty


def test_what_changed_and_what_to_mount() -> None:
    old_shared = FstabEntry("10.1.10.240:/srv/shared", "/shared", "nfs", "rw")
    current = (RASPBERRY_PI_OS + SHARED_MARK + "10.1.10.240:/srv/shared /shared nfs rw 0 0\n"
               + SCRATCH_MARK + SCRATCH_LINE + "/dev/sdc1 /data ext4 defaults 0 2\n")
    data = FstabEntry("/dev/sdc1", "/data", "ext4", "defaults", 0, 2, origin="cluster.toml [[mounts]] /data")
    home = FstabEntry("LABEL=home", "/home/shared", "ext4", origin="cluster.toml [[mounts]] /home/shared")
    edit = plan_fstab(current, [SHARED, data, home])
    assert edit.changed == ((old_shared, SHARED),)
    assert edit.removed == (SCRATCH,)
    assert edit.adopted == (data,)
    assert edit.added == (home,)
    assert edit.unmount == ("/scratch", "/shared")  # before the file is written
    assert edit.mount == ("/home/shared", "/shared")  # after
    assert edit.before == current


def test_a_foreign_entry_that_differs_is_a_conflict_not_overwritten() -> None:
    current = RASPBERRY_PI_OS + "node0:/srv/shared  /shared  nfs  defaults  0 0\n"
    edit = plan_fstab(current, [SHARED, SCRATCH])
    assert edit.text == current + SCRATCH_MARK + SCRATCH_LINE  # the rest still planned
    (conflict,) = edit.conflicts
    assert conflict.wanted == SHARED
    assert str(conflict) == (
        "/shared: /etc/fstab already has 'node0:/srv/shared  /shared  nfs  defaults  0 0', which "
        f"picl did not write; remove it or make it read '{SHARED_LINE.strip()}' and picl adopts it"
    )
    with pytest.raises(FstabConflicts) as raised:
        edit.raise_for_conflicts("node1")
    assert raised.value.lines() == [f"node1: {conflict}"]


# -- credentials are never shown ----------------------------------------------------------------
# Each secret below is "hunter2" (or holds it); `shown` must hide it and change nothing else.

SHOWN = [
    # mount.cifs and smbfs: password, its aliases and its rotation twin, any case
    ("//nas/share /mnt/nas cifs username=bob,password=hunter2,uid=1000 0 0",
     "//nas/share /mnt/nas cifs username=bob,password=(sensitive),uid=1000 0 0"),
    ("//nas/s /mnt/s cifs pass=hunter2 0 0", "//nas/s /mnt/s cifs pass=(sensitive) 0 0"),
    ("//nas/s /mnt/s cifs passwd=hunter2,ro", "//nas/s /mnt/s cifs passwd=(sensitive),ro"),
    ("//nas/s /mnt/s cifs password2=hunter2", "//nas/s /mnt/s cifs password2=(sensitive)"),
    ("//nas/s /mnt/s smbfs PASSWORD=hunter2", "//nas/s /mnt/s smbfs PASSWORD=(sensitive)"),
    ("//nas/s /mnt/s cifs password=hun,,ter2,ro 0 0",  # a comma in it, written twice
     "//nas/s /mnt/s cifs password=(sensitive),ro 0 0"),
    ("//nas/s /mnt/s cifs password=hun\\040ter2 0 0",  # a space in it, escaped
     "//nas/s /mnt/s cifs password=(sensitive) 0 0"),
    ("//nas/s /mnt/s cifs password=hunter2", "//nas/s /mnt/s cifs password=(sensitive)"),
    ("//nas/s\t/mnt/s\tcifs\tro,password=hunter2\t0\t0",
     "//nas/s\t/mnt/s\tcifs\tro,password=(sensitive)\t0\t0"),
    ("//nas/s /mnt/s cifs password=,ro", "//nas/s /mnt/s cifs password=(sensitive),ro"),
    # a user and a password in one option
    ("//nas/s /mnt/s cifs username=bob%hunter2,ro", "//nas/s /mnt/s cifs username=bob%(sensitive),ro"),
    ("//nas/s /mnt/s cifs user=bob%hunter2", "//nas/s /mnt/s cifs user=bob%(sensitive)"),
    ("ftp.example.org /mnt/ftp curlftpfs user=bob:hunter2,allow_other 0 0",
     "ftp.example.org /mnt/ftp curlftpfs user=bob:(sensitive),allow_other 0 0"),
    # sources and URLs with a password
    ("curlftpfs#bob:hunter2@ftp.example.org /mnt/ftp fuse defaults 0 0",
     "curlftpfs#bob:(sensitive)@ftp.example.org /mnt/ftp fuse defaults 0 0"),
    ("https://bob:hunter2@dav.example.org/dav /mnt/dav davfs user,noauto 0 0",
     "https://bob:(sensitive)@dav.example.org/dav /mnt/dav davfs user,noauto 0 0"),
    ("https://bob:hun@ter2@dav.example.org/ /mnt/dav davfs user 0 0",  # an @ in it
     "https://bob:(sensitive)@dav.example.org/ /mnt/dav davfs user 0 0"),
    ("bob:hunter2@host:/home/bob /mnt/bob fuse.sshfs _netdev 0 0",
     "bob:(sensitive)@host:/home/bob /mnt/bob fuse.sshfs _netdev 0 0"),
    # ceph, ecryptfs, sshfs through sshpass, tokens
    ("mon1:6789:/ /mnt/ceph ceph name=admin,secret=AQBhunter2Q==,_netdev 0 0",
     "mon1:6789:/ /mnt/ceph ceph name=admin,secret=(sensitive),_netdev 0 0"),
    ("/srv/e /srv/e ecryptfs key=passphrase:passphrase_passwd=hunter2,ecryptfs_cipher=aes 0 0",
     "/srv/e /srv/e ecryptfs key=(sensitive),ecryptfs_cipher=aes 0 0"),
    ("bob@host: /mnt/h fuse.sshfs ssh_command=sshpass\\040-p\\040hunter2\\040ssh 0 0",
     "bob@host: /mnt/h fuse.sshfs ssh_command=(sensitive) 0 0"),
    ("s3 /mnt/s3 fuse.rclone auth_token=hunter2 0 0", "s3 /mnt/s3 fuse.rclone auth_token=(sensitive) 0 0"),
    # a commented-out line, a diff's lines
    ("#//nas/old /mnt/old cifs password=hunter2 0 0", "#//nas/old /mnt/old cifs password=(sensitive) 0 0"),
    ("# password=hunter2", "# password=(sensitive)"),
    ("+//nas/s /mnt/s cifs password=hunter2 0 0", "+//nas/s /mnt/s cifs password=(sensitive) 0 0"),
    (" //nas/s /mnt/s cifs password=hunter2 0 0", " //nas/s /mnt/s cifs password=(sensitive) 0 0"),
    ("-password=hunter2 /mnt/odd none bind", "-password=(sensitive) /mnt/odd none bind"),
    ("a\n//nas/s /mnt/s cifs password=hunter2 0 0\nb\n",
     "a\n//nas/s /mnt/s cifs password=(sensitive) 0 0\nb\n"),
]
KEPT = [  # nothing secret here: shown as it is
    "//nas/s /mnt/s cifs credentials=/root/.smbcredentials,uid=1000 0 0",
    "//nas/s /mnt/s cifs username=bob,domain=WORK,vers=3.0 0 0",
    "10.1.10.240:/srv/shared /shared nfs rw,_netdev,nofail,x-systemd.automount,x-systemd.mount-timeout=30s 0 0",
    "[fe80::1%eth0]:/srv /mnt/v6 nfs defaults 0 0",
    "bob@host:/home/bob /mnt/bob fuse.sshfs IdentityFile=/root/.ssh/id_ed25519,_netdev 0 0",
    "LABEL=keys /mnt/keys ext4 defaults 0 2",
    "/dev/sdb1 /mnt/passport ntfs defaults 0 0",
    "PARTUUID=4e639091-02  /               ext4    defaults,noatime  0       1",
    "UUID=\"A40D-85E7\" /boot/efi vfat umask=0077 0 1",
    SHARED_MARK,
    "--- /etc/fstab (node)\n+++ /etc/fstab\n@@ -1,2 +1,4 @@\n",
]


@pytest.mark.parametrize("text, expected", SHOWN)
def test_credentials_are_never_shown(text: str, expected: str) -> None:
    assert shown(text) == expected
    assert "hunter2" not in shown(text) and "ter2" not in shown(text)


@pytest.mark.parametrize("text", KEPT)
def test_what_holds_no_credential_is_shown_as_it_is(text: str) -> None:
    assert shown(text) == text


def test_bytes_that_are_not_utf8_are_shown_replaced() -> None:
    assert shown("# caf\udce9 password=hunter2") == "# caf\ufffd password=(sensitive)"


def test_a_conflict_never_quotes_a_credential() -> None:
    foreign = "//nas/share /shared cifs username=bob,password=hunter2 0 0\n"
    edit = plan_fstab(RASPBERRY_PI_OS + foreign, [SHARED])
    (conflict,) = edit.conflicts
    assert conflict.found == foreign.strip()  # kept as it is: only what is shown hides it
    assert str(conflict) == (
        "/shared: /etc/fstab already has '//nas/share /shared cifs username=bob,"
        "password=(sensitive) 0 0', which picl did not write; remove it or make it read "
        f"'{SHARED_LINE.strip()}' and picl adopts it")
    with pytest.raises(FstabConflicts) as raised:
        edit.raise_for_conflicts("node1")
    assert "hunter2" not in str(raised.value)


def test_a_conflict_leaves_picls_own_line_for_that_mount_point_alone() -> None:
    current = SHARED_MARK + "10.1.10.240:/srv/shared /shared nfs rw 0 0\n/dev/sdz /shared ext4\n"
    edit = plan_fstab(current, [SHARED])
    assert edit.text == current
    assert [c.found for c in edit.conflicts] == ["/dev/sdz /shared ext4"]


@pytest.mark.parametrize("where", ["/", "/boot", "/boot/firmware", "/var"])
def test_system_mount_points_are_never_picls(where: str) -> None:
    wanted = FstabEntry("LABEL=x", where, "ext4")
    edit = plan_fstab(RASPBERRY_PI_OS, [wanted])
    assert edit.text == RASPBERRY_PI_OS
    assert [str(c) for c in edit.conflicts] == [f"{where} is a system mount point: picl never manages it"]


def test_swap_is_never_picls() -> None:
    edit = plan_fstab(RASPBERRY_PI_OS, [FstabEntry("/swapfile", "none", "swap", "sw")])
    assert edit.text == RASPBERRY_PI_OS and len(edit.conflicts) == 1


def test_two_entries_for_one_mount_point_are_a_bug() -> None:
    with pytest.raises(ValueError, match="two entries wanted for /shared"):
        plan_fstab("", [SHARED, FstabEntry("/dev/sda1", "/shared/", "ext4")])


def test_marker_names_where_the_entry_comes_from() -> None:
    entry = FstabEntry("/dev/sda1", "/data(1)", "ext4", origin="cluster.toml [[mounts]] /data(1)")
    text = plan_fstab("", [entry]).text
    assert text.splitlines()[0] == (
        "# picl: managed by picl (cluster.toml [[mounts]] /data(1)); edit the spec, not this line"
    )
    assert Fstab.parse(text).owned() == {1: entry}
    assert Fstab.parse(text).owned()[1].origin == entry.origin
    assert not plan_fstab(text, [entry]).changes


def test_mount_points_with_spaces_are_escaped() -> None:
    entry = FstabEntry("LABEL=my disk", "/mnt/my disk", "ext4", origin="o")
    text = plan_fstab("", [entry]).text
    assert text.splitlines()[1] == "LABEL=my\\040disk /mnt/my\\040disk ext4 defaults 0 0"
    assert Fstab.parse(text).entries == [entry]


@pytest.mark.skipif(shutil.which("findmnt") is None, reason="needs findmnt (util-linux)")
def test_every_edit_reads_cleanly_with_findmnt(tmp_path: Path) -> None:
    for current, desired, _ in EDITS.values():
        text = plan_fstab(current, desired).text
        path = tmp_path / "fstab"
        path.write_text(text)
        run = subprocess.run(["findmnt", "--tab-file", str(path)], capture_output=True, text=True)
        assert "parse error" not in run.stderr, text


# BASE has /shared from node0 to all and /scratch on node1; add a read-only share from node1.
ARCHIVE = """
[[shares]]
name = "archive"
server = "node1"
export = "/srv/archive"
mount = "/archive"
clients = ["node0", "node1"]
options = "ro,async"
"""


def test_entries_from_the_spec(tmp_path: Path) -> None:
    cluster = small_cluster(tmp_path, ARCHIVE)
    archive = FstabEntry("10.1.10.241:/srv/archive", "/archive", "nfs", NFS.replace("rw", "ro"),
                         origin="cluster.toml [[shares]] archive")
    assert fstab_entries(cluster, "node0") == [archive]  # not its own share
    assert fstab_entries(cluster, cluster.node("node1")) == [SHARED, SCRATCH]  # not its own either
    assert fstab_entries(cluster, "node2") == [SHARED]  # not a client of archive
    assert [e.origin for e in fstab_entries(cluster, "node1")] == [SHARED.origin, SCRATCH.origin]


def test_nfs_entries_keep_a_node_bootable_with_its_server_down(tmp_path: Path) -> None:
    cluster = small_cluster(tmp_path, ARCHIVE)
    for entry in fstab_entries(cluster, "node2"):
        options = entry.options.split(",")
        assert {"_netdev", "nofail", "x-systemd.automount"} <= set(options)
        assert any(o.startswith("x-systemd.mount-timeout=") for o in options)
