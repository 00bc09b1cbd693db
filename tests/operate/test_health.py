"""picl check as data: the script per node, its output parsed, and each reading judged."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from picl.operate.health import (
    Check,
    Expected,
    Level,
    NodeHealth,
    Readings,
    expected,
    health_script,
    judge,
    judge_clock,
    judge_disk,
    judge_load,
    judge_mpi,
    judge_primary,
    judge_shares,
    judge_slurm,
    judge_temperature,
    mpi_job,
    node_health,
    readings,
    slurm_job,
)
from picl.spec import Cluster, load
from picl.transport.remote import Reply
from tests.spec.conftest import BASE

# What node1 of a lab printed (a systemd-nspawn container: no chrony, no sensor, no NFS).
LAB_NODE1 = """
@@ ping-address
0

@@ resolve
10.1.10.240     node0.cluster node0

@@ ping-name
0

@@ chrony
LoadState=loaded
ActiveState=inactive
ConditionResult=no

@@ chrony-condition
ConditionCapability=CAP_SYS_TIME

@@ tracking

@@ timedatectl
Timezone=America/New_York
LocalRTC=no
CanNTP=yes
NTP=no
NTPSynchronized=no
TimeUSec=Wed 2026-11-25 21:05:31 EST

@@ container
systemd-nspawn

@@ vcgencmd

@@ thermal

@@ nfs
no

@@ mount /shared

@@ disk
overlay          264212084 24400836  81990076      23% /

@@ load
5.19 4.19 3.59 5/288 267
2
"""

# A Raspberry Pi 4 worker: chrony synced to the primary, vcgencmd, the share automounted.
PI_NODE1 = """
@@ ping-address
0
@@ resolve
10.1.10.240     node0.cluster node0
@@ ping-name
0
@@ chrony
LoadState=loaded
ActiveState=active
ConditionResult=yes
@@ chrony-condition
@@ tracking
Reference ID    : 0A010AF0 (10.1.10.240)
Stratum         : 4
Ref time (UTC)  : Thu Nov 26 01:50:12 2026
System time     : 0.000123456 seconds slow of NTP time
Last offset     : -0.000045678 seconds
Leap status     : Normal
@@ timedatectl
NTPSynchronized=yes
@@ container
@@ vcgencmd
temp=48.7'C
throttled=0x50000
@@ thermal
48686
@@ nfs
yes
@@ mount /shared
autofs systemd-1
nfs4 10.1.10.240:/srv/shared
@@ mount /scratch space
@@ disk
/dev/root         30358348 9120932  19967788      32% /
@@ load
0.31 0.52 0.40 1/190 1234
4
"""

NODE1 = Expected("node0", "10.1.10.240", is_primary=False,
                 mounts={"/shared": "10.1.10.240:/srv/shared"})


def test_a_lab_node_s_output_parses() -> None:
    r = readings(LAB_NODE1)
    assert (r.primary_by_address, r.primary_resolves_to, r.primary_by_name) == (
        True, ["10.1.10.240"], True)
    assert r.chrony == {"LoadState": "loaded", "ActiveState": "inactive", "ConditionResult": "no"}
    assert r.chrony_condition == "ConditionCapability=CAP_SYS_TIME"
    assert r.tracking == {}
    assert r.timedatectl["NTPSynchronized"] == "no"
    assert (r.container, r.temperature, r.throttled, r.nfs) == ("systemd-nspawn", None, None, False)
    assert r.mounts == {"/shared": []}
    assert (r.disk_used, r.load, r.cores) == (23, (5.19, 4.19, 3.59), 2)


def test_a_lab_node_is_green_with_warnings_for_what_a_container_lacks() -> None:
    levels = {c.name: c.level for c in judge(readings(LAB_NODE1), NODE1)}
    assert levels == {"primary": Level.OK, "clock": Level.WARN, "temperature": Level.WARN,
                      "shares": Level.WARN, "disk": Level.OK, "load": Level.WARN}
    clock = judge_clock(readings(LAB_NODE1))
    assert clock.detail == ("chrony skipped (ConditionCapability=CAP_SYS_TIME not met; "
                            "a container: its host keeps the clock)")


def test_a_pi_s_output_parses() -> None:
    r = readings(PI_NODE1)
    assert r.tracking["Reference ID"] == "0A010AF0 (10.1.10.240)"
    assert r.tracking["Ref time (UTC)"] == "Thu Nov 26 01:50:12 2026"
    assert (r.temperature, r.throttled, r.nfs, r.container) == (48.7, 0x50000, True, None)
    assert r.mounts == {"/shared": [("autofs", "systemd-1"), ("nfs4", "10.1.10.240:/srv/shared")],
                        "/scratch space": []}
    assert (r.disk_used, r.load, r.cores) == (32, (0.31, 0.52, 0.40), 4)


def test_a_healthy_pi_is_ok_but_for_under_voltage_since_boot() -> None:
    checks = {c.name: c for c in judge(readings(PI_NODE1), NODE1)}
    assert {n: c.level for n, c in checks.items()} == {
        "primary": Level.OK, "clock": Level.OK, "temperature": Level.WARN,
        "shares": Level.OK, "disk": Level.OK, "load": Level.OK}
    assert checks["clock"].value == "-0.1ms"
    assert checks["clock"].detail == "synchronised to 10.1.10.240, -0.1ms off"
    assert checks["temperature"].detail == "under-voltage since boot; throttled since boot"
    assert checks["shares"].value == "1/1"


def test_garbled_or_missing_readings_stay_unknown() -> None:
    r = readings("@@ disk\nno such thing\n@@ load\nx y z\nmany\n@@ vcgencmd\ntemp=hot\n")
    assert (r.disk_used, r.load, r.cores, r.temperature, r.nfs) == (None, None, None, None, None)
    assert [c.level for c in judge(r, NODE1)] == [Level.FAIL, Level.FAIL, Level.WARN,
                                                  Level.FAIL, Level.WARN, Level.WARN]


@pytest.mark.parametrize(("reading", "level", "detail"), [
    (Readings(temperature=45.0), Level.OK, ""),
    (Readings(temperature=69.9), Level.OK, ""),
    (Readings(temperature=70.0), Level.WARN, "70.0°C: near throttling (80°C)"),
    (Readings(temperature=80.0), Level.FAIL, "80.0°C: the CPU throttles from 80°C"),
    (Readings(temperature=45.0, throttled=0x0), Level.OK, ""),
    (Readings(temperature=45.0, throttled=0x1), Level.FAIL,
     "under-voltage now: the power supply is too weak"),
    (Readings(temperature=45.0, throttled=0x10000), Level.WARN, "under-voltage since boot"),
    (Readings(temperature=82.0, throttled=0xC), Level.FAIL,
     "82.0°C: the CPU throttles from 80°C; the CPU is throttled now"),
    (Readings(temperature=60.0, throttled=0x40000), Level.WARN, "throttled since boot"),
    (Readings(), Level.WARN, "no sensor (neither vcgencmd nor /sys/class/thermal)"),
])
def test_temperature_thresholds_are_a_pi_s(reading, level, detail) -> None:
    check = judge_temperature(reading)
    assert (check.level, check.detail) == (level, detail)


@pytest.mark.parametrize(("used", "level"), [(0, Level.OK), (79, Level.OK), (80, Level.WARN),
                                             (94, Level.WARN), (95, Level.FAIL), (100, Level.FAIL)])
def test_root_filesystem_thresholds(used, level) -> None:
    assert judge_disk(Readings(disk_used=used)).level is level


@pytest.mark.parametrize(("five_minutes", "cores", "level"), [
    (3.9, 4, Level.OK),  # every core busy is a working cluster, not a sick one
    (7.9, 4, Level.OK),
    (8.0, 4, Level.WARN),
    (31.9, 4, Level.WARN),
    (32.0, 4, Level.FAIL),
    (2.0, 1, Level.WARN),
])
def test_load_thresholds_are_per_core(five_minutes, cores, level) -> None:
    assert judge_load(Readings(load=(0.0, five_minutes, 0.0), cores=cores)).level is level


def _tracking(system_time: str, leap: str = "Normal", reference: str = "0A010AF0 (10.1.10.240)"):
    return Readings(chrony={"LoadState": "loaded", "ActiveState": "active"},
                    tracking={"Reference ID": reference, "System time": system_time,
                              "Leap status": leap})


@pytest.mark.parametrize(("reading", "level", "value", "detail"), [
    (_tracking("0.000012000 seconds fast of NTP time"), Level.OK, "+0.0ms",
     "synchronised to 10.1.10.240, +0.0ms off"),
    (_tracking("0.099000000 seconds slow of NTP time"), Level.OK, "-99.0ms",
     "synchronised to 10.1.10.240, -99.0ms off"),
    (_tracking("0.100000000 seconds slow of NTP time"), Level.WARN, "-100.0ms",
     "synchronised to 10.1.10.240, -100.0ms off"),
    (_tracking("1.500000000 seconds fast of NTP time"), Level.FAIL, "+1.5s",
     "synchronised to 10.1.10.240, +1.5s off"),
    (_tracking("0.000000000 seconds fast of NTP time", leap="Not synchronised",
               reference="00000000 ()"), Level.FAIL, "unsynced",
     "chrony runs but is not synchronised"),
    # The primary carried offline serves its own clock, as the spec's `serve` wants.
    (_tracking("0.000000000 seconds fast of NTP time", reference="7F7F0101 ()"), Level.OK,
     "+0.0ms", "its own clock (no upstream), +0.0ms off"),
    (Readings(chrony={"LoadState": "not-found", "ActiveState": "inactive"},
              timedatectl={"NTPSynchronized": "yes"}), Level.OK, "synced",
     "synchronised (timedatectl)"),
    (Readings(chrony={"LoadState": "not-found", "ActiveState": "inactive"},
              timedatectl={"NTPSynchronized": "no"}), Level.FAIL, "unsynced",
     "not synchronised (chrony: not installed)"),
    (Readings(chrony={"LoadState": "loaded", "ActiveState": "failed"},
              timedatectl={"NTPSynchronized": "no"}), Level.FAIL, "unsynced",
     "not synchronised (chrony: failed)"),
    (Readings(chrony={"LoadState": "loaded", "ActiveState": "inactive", "ConditionResult": "no"}),
     Level.WARN, "n/a", "chrony skipped (a condition not met)"),
])
def test_clock(reading, level, value, detail) -> None:
    check = judge_clock(reading)
    assert (check.level, check.value, check.detail) == (level, value, detail)


def _pinged(address=True, resolves=("10.1.10.240",), name=True) -> Readings:
    return Readings(primary_by_address=address, primary_resolves_to=list(resolves),
                    primary_by_name=name)


@pytest.mark.parametrize(("reading", "want", "level", "detail"), [
    (_pinged(), NODE1, Level.OK, ""),
    (_pinged(address=False), NODE1, Level.FAIL, "10.1.10.240 does not answer ping"),
    (_pinged(resolves=(), name=False), NODE1, Level.FAIL,
     "node0 does not resolve (/etc/hosts: `picl apply` writes it)"),
    (_pinged(name=False), NODE1, Level.FAIL, "node0 (10.1.10.240) does not answer ping"),
    (_pinged(resolves=("10.1.10.99",)), NODE1, Level.WARN,
     "node0 resolves to 10.1.10.99, the spec says 10.1.10.240"),
    # On the primary itself, Debian's 127.0.1.1 line for its own name is fine.
    (_pinged(resolves=("127.0.1.1",)), replace(NODE1, is_primary=True, mounts={}), Level.OK, ""),
    (Readings(), NODE1, Level.FAIL, "no reading"),
])
def test_the_primary_by_address_and_by_name(reading, want, level, detail) -> None:
    check = judge_primary(reading, want)
    assert (check.level, check.detail) == (level, detail)


@pytest.mark.parametrize(("mounts", "nfs", "container", "level", "detail"), [
    ([("nfs4", "10.1.10.240:/srv/shared")], True, None, Level.OK, ""),
    ([("nfs", "10.1.10.240:/srv/shared/")], True, None, Level.OK, ""),
    ([("nfs4", "10.1.10.7:/srv/shared")], True, None, Level.WARN,
     "/shared is mounted from 10.1.10.7:/srv/shared, the spec says 10.1.10.240:/srv/shared"),
    ([], True, None, Level.FAIL, "/shared not mounted (10.1.10.240:/srv/shared)"),
    # The automount is there, the server did not answer: nothing is mounted.
    ([("autofs", "systemd-1")], True, None, Level.FAIL,
     "/shared not mounted (10.1.10.240:/srv/shared)"),
    ([("tmpfs", "tmpfs")], True, None, Level.FAIL, "/shared not mounted (10.1.10.240:/srv/shared)"),
    ([], False, None, Level.FAIL, "/shared not mounted: no NFS in this kernel"),
    ([], False, "systemd-nspawn", Level.WARN,
     "/shared cannot be mounted here: no NFS in this kernel (systemd-nspawn container)"),
])
def test_shares(mounts, nfs, container, level, detail) -> None:
    check = judge_shares(Readings(mounts={"/shared": mounts}, nfs=nfs, container=container), NODE1)
    assert check is not None
    assert (check.level, check.detail) == (level, detail)


def test_a_node_that_mounts_no_share_has_no_share_check() -> None:
    assert judge_shares(Readings(), replace(NODE1, mounts={})) is None


def test_the_spec_says_which_node_mounts_what(cluster: Cluster) -> None:
    assert expected(cluster, cluster.node("node0")) == Expected("node0", "10.1.10.240", True, {})
    assert expected(cluster, cluster.node("node1")).mounts == {"/shared": "10.1.10.240:/srv/shared"}


def test_the_script_reads_each_mount_the_node_should_have(cluster: Cluster) -> None:
    server = health_script(expected(cluster, cluster.node("node0")))
    client = health_script(expected(cluster, cluster.node("node1")))
    assert "@@ %s" in client and "s 'mount /shared';" in client and "mount " not in server
    for script in (server, client):
        assert subprocess.run(["sh", "-n", "-c", script], check=False).returncode == 0


def test_an_unreachable_node_has_one_failed_check() -> None:
    reply = Reply("node2", None, error="ssh: connect to host 10.1.10.242 port 22: No route to host")
    health = node_health(reply, NODE1)
    assert [(c.name, c.level, c.detail) for c in health.checks] == [
        ("ssh", Level.FAIL, "connect to host 10.1.10.242 port 22: No route to host")]
    assert health.level is Level.FAIL


def test_a_node_that_answered_has_every_check() -> None:
    health = node_health(Reply("node1", 0, PI_NODE1, seconds=0.42), NODE1)
    assert [c.name for c in health.checks] == ["ssh", "primary", "clock", "temperature",
                                               "shares", "disk", "load"]
    assert health.check("ssh").value == "0.4s"
    assert health.level is Level.WARN


def test_findings_fold_the_nodes_that_share_one_failures_first() -> None:
    from picl.cli.health import findings

    warm = Check("temperature", Level.WARN, "71.0°C", "71.0°C: near throttling (80°C)")
    full = Check("disk", Level.FAIL, "96%", "/ is 96% full")
    nodes = [NodeHealth("node0", [warm]), NodeHealth("node1", [warm, full]),
             NodeHealth("node2", [Check("disk", Level.OK, "20%"), warm])]
    assert findings(nodes) == [(["node1"], full), (["node0", "node1", "node2"], warm)]


# [mpi] in BASE: node1 and node2 compute, node0 (the primary) launches.
@pytest.mark.parametrize(("reply", "levels", "detail"), [
    (Reply(" mpi job", 0, "node1\nnode2\n"), {"node1": "OK", "node2": "OK"}, ""),
    (Reply(" mpi job", 1, "node1\n", "ORTE was unable to reliably start one or more daemons\n"),
     {"node1": "FAIL", "node2": "FAIL"}, "ORTE was unable"),
    (Reply(" mpi job", 0, "node1\nnode1\n"), {"node1": "OK", "node2": "FAIL"}, "its ranks ran on node1"),
    (Reply(" mpi job", None, "", error="still running after 20s: stopped"),
     {"node1": "FAIL", "node2": "FAIL"}, "mpirun on node0: still running after 20s"),
    (Reply(" mpi job", None, error="no such user on this node"),
     {"node1": "FAIL", "node2": "FAIL"}, "no such user"),
])
def test_mpi_check_names_each_node_no_rank_ran_on(cluster: Cluster, reply: Reply,
                                                  levels: dict[str, str], detail: str) -> None:
    found = judge_mpi(reply, cluster)
    assert {name: c.level.value for name, c in found.items()} == levels
    failed = [c for c in found.values() if c.level is Level.FAIL]
    assert all(detail in c.detail for c in failed)


def test_mpi_job_is_one_rank_on_each_computing_node(cluster: Cluster) -> None:
    assert mpi_job(cluster) == "mpirun -np 2 --map-by node hostname"


# [slurm] in BASE plus `nodes = ["node1", "node2"]`: node0 controls, node1 and node2 compute.
SINFO = "@@ sinfo\n{}\nstatus {}\n@@ munge\n{}"
ALL_DECODE = "node0 0 \nnode1 0 \nnode2 0 \n"


@pytest.fixture
def slurm_cluster(tmp_path: Path) -> Cluster:
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "issue").write_text("arrakis\n")
    (tmp_path / "cluster.toml").write_text(BASE + '\n[slurm]\nnodes = ["node1", "node2"]\n')
    return load(tmp_path / "cluster.toml")


@pytest.mark.parametrize(("sinfo", "found"), [
    ("node1|idle|none\nnode2|allocated|none", {"node1": ("OK", "idle"), "node2": ("OK", "allocated")}),
    ("node1|mixed|none\nnode2|down*|Not responding",
     {"node1": ("OK", "mixed"), "node2": ("FAIL", "not responding: Not responding")}),
    ("node1|drained|disk full\nnode2|draining|maintenance",
     {"node1": ("WARN", "drained: disk full"), "node2": ("WARN", "draining: maintenance")}),
    ("node1|idle*|none\nnode2|down|Low RealMemory",
     {"node1": ("FAIL", "not responding"), "node2": ("FAIL", "down: Low RealMemory")}),
    ("node1|idle|none", {"node1": ("OK", "idle"),
                         "node2": ("FAIL", "the controller does not know this node")}),
])
def test_slurm_check_shows_each_node_as_the_controller_sees_it(
        slurm_cluster: Cluster, sinfo: str, found: dict[str, tuple[str, str]]) -> None:
    reply = Reply(" slurm", 0, SINFO.format(sinfo, 0, ALL_DECODE))
    checks = judge_slurm(reply, slurm_cluster)
    assert {n: next((c.level.value, c.detail or c.value) for c in cs if c.name == "slurm")
            for n, cs in checks.items() if n != "node0"} == found
    assert [c.name for c in checks["node0"]] == ["munge"]  # the controller runs no jobs


def test_slurm_check_when_sinfo_fails_says_why_on_every_computing_node(
        slurm_cluster: Cluster) -> None:
    said = "slurm_load_partitions: Unable to contact slurm controller (connect failure)"
    checks = judge_slurm(Reply(" slurm", 0, SINFO.format(said, 1, ALL_DECODE)), slurm_cluster)
    for node in ("node1", "node2"):
        (state,) = [c for c in checks[node] if c.name == "slurm"]
        assert (state.level, state.detail) == (Level.FAIL, f"sinfo on node0: {said}")


def test_munge_check_names_each_node_a_credential_does_not_decode_on(
        slurm_cluster: Cluster) -> None:
    decode = ("node0 0 \nnode1 1 unmunge: Error: Invalid credential\n"
              "node2 255 ssh: connect to host node2 port 22: No route to host\n")
    checks = judge_slurm(Reply(" slurm", 0, SINFO.format("node1|idle|none\nnode2|idle|none", 0,
                                                         decode)), slurm_cluster)
    munge = {n: next(c for c in cs if c.name == "munge") for n, cs in checks.items()}
    assert munge["node0"].level is Level.OK
    assert munge["node1"].detail == "munge -n on node0 | unmunge here: unmunge: Error: " \
                                    "Invalid credential"
    assert "No route to host" in munge["node2"].detail and munge["node2"].level is Level.FAIL


def test_slurm_job_lists_every_slurm_node(slurm_cluster: Cluster) -> None:
    job = slurm_job(slurm_cluster)
    assert "for n in node0 node1 node2; do" in job
    assert "sinfo -N -h -o '%N|%T|%E'" in job


def test_slurm_job_as_a_shell_script(slurm_cluster: Cluster, tmp_path: Path) -> None:
    # Its munge and ssh replaced: what the script prints is what judge_slurm reads.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in {"sinfo": "echo 'node1|idle|none'", "munge": "echo cred",
                       "ssh": '[ "$5" != node2 ] || '  # -o X -o Y NODE unmunge
                              '{ echo "unmunge: Error: Expired credential" >&2; exit 1; }'}.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    ran = subprocess.run(["sh", "-c", slurm_job(slurm_cluster)], capture_output=True, text=True,
                         env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    checks = judge_slurm(Reply(" slurm", 0, ran.stdout), slurm_cluster)
    munge = {n: next(c for c in cs if c.name == "munge") for n, cs in checks.items()}
    assert [munge[n].level.value for n in ("node0", "node1", "node2")] == ["OK", "OK", "FAIL"]
    assert munge["node2"].detail.endswith("unmunge: Error: Expired credential")
