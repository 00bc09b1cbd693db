"""[slurm] planned as data: slurm.conf from the spec and the nodes' facts, the munge key, the
packages per role, the version refusal, configless kept out."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from pathlib import Path

import pytest

from picl.deploy import slurm
from picl.deploy.changes import SENSITIVE, Change
from picl.deploy.plan import needed, plan_node, reads
from picl.deploy.slurm import Hardware
from picl.deploy.view import ClusterFacts, NodeView
from picl.facts.node import Observed, Stat, parse, script
from picl.spec import Cluster, load
from tests.deploy.conftest import fresh_node
from tests.spec.conftest import BASE, SECRETS

BOOKWORM = "22.05.8-4+deb12u3"
TRIXIE = "24.11.5-1"
NODES = ("node0", "node1", "node2")
PI4 = Hardware(cpus=4, sockets=1, cores_per_socket=4, threads_per_core=1, memory=3794)
KEY = base64.b64encode(bytes(range(256)) * 4).decode()


def spec(tmp_path: Path, table: str = "", key: str | None = KEY) -> Cluster:
    """BASE with a [slurm] table of `table`; the munge key in secrets.toml unless None."""
    (tmp_path / "files").mkdir(exist_ok=True)
    (tmp_path / "files" / "issue").write_text("arrakis\n")
    (tmp_path / "cluster.toml").write_text(BASE + f"\n[slurm]\n{table}\n")
    munge = f'munge_key = "{key}"\n' if key is not None else ""
    (tmp_path / "secrets.toml").write_text(SECRETS + munge)
    (tmp_path / "secrets.toml").chmod(0o600)
    return load(tmp_path / "cluster.toml")


def node_state(name: str, hardware: Hardware | None = PI4, version: str | None = BOOKWORM,
               ) -> Observed:
    observed = fresh_node(name)
    if hardware is not None:  # as /proc/meminfo and lscpu show it
        observed.kernel[slurm.MEMINFO] = [f"MemTotal:       {hardware.memory * 1024} kB"]
        observed.outputs[slurm.TOPOLOGY[0]] = [
            f"0,{cpu // hardware.threads_per_core}" for cpu in range(hardware.cpus)]
    observed.versions = {p: version for p in (slurm.CONTROLLER, slurm.DAEMON, slurm.CLIENT)}
    return observed


def everyone(**kwargs: object) -> dict[str, Observed]:
    return {n: node_state(n, **kwargs) for n in NODES}  # type: ignore[arg-type]


def plan(cluster: Cluster, name: str, states: dict[str, Observed]) -> dict[str, Change]:
    shared = ClusterFacts(observed=states, spec_dir=Path("."))
    view = NodeView(cluster, cluster.node(name), states[name], shared)
    return {c.resource: c for c in slurm.changes(view)}


def written(changes: dict[str, Change], path: str) -> str:
    return changes[f"slurm {path}"].steps[0].arguments["src"].getvalue()


def converged(cluster: Cluster, states: dict[str, Observed]) -> dict[str, Observed]:
    """The nodes as apply leaves them: every planned file and key in place, daemons running."""
    for name in NODES:
        for change in plan(cluster, name, states).values():
            for step in change.steps:
                arguments = step.arguments
                if "dest" in arguments:
                    content = arguments["src"].getvalue()
                    if isinstance(content, bytes):
                        states[name].digests[arguments["dest"]] = hashlib.sha256(
                            content).hexdigest()
                        states[name].stats[arguments["dest"]] = Stat(
                            "munge", "munge", "0400", 100, 100, "regular file")
                    else:
                        states[name].files[arguments["dest"]] = content.encode()
        states[name].units = dict.fromkeys(slurm.UNITS, ("enabled", "active"))
    return states


# -- slurm.conf ------------------------------------------------------------------------------


def test_every_node_gets_the_same_slurm_conf(tmp_path: Path) -> None:
    cluster = spec(tmp_path)
    states = everyone()
    texts = {written(plan(cluster, n, states), slurm.SLURM_CONF) for n in NODES}
    assert len(texts) == 1


def test_slurm_conf_nodes_as_slurmd_reports_them(tmp_path: Path) -> None:
    cluster = spec(tmp_path, 'partition = "pis"\nmax_time = "36h"')
    text = written(plan(cluster, "node1", everyone()), slurm.SLURM_CONF)
    lines = text.splitlines()
    assert "SlurmctldHost=node0(10.1.10.240)" in lines  # the primary, by default
    assert ("NodeName=node1 NodeAddr=10.1.10.241 CPUs=4 Sockets=1 CoresPerSocket=4 "
            "ThreadsPerCore=1 RealMemory=3794") in lines
    assert "PartitionName=pis Nodes=node0,node1,node2 Default=YES MaxTime=1-12:00:00 State=UP" \
        in lines
    assert "ReturnToService=2" in lines
    assert "ProctrackType=proctrack/linuxproc" in lines and "TaskPlugin=task/none" in lines
    assert not [ln for ln in lines if "configless" in ln.lower()]


def test_slots_limit_the_partition_and_leave_the_node_lines_as_slurmd_reports(
        tmp_path: Path) -> None:
    cluster = spec(tmp_path, "slots = 2")
    lines = written(plan(cluster, "node1", everyone()), slurm.SLURM_CONF).splitlines()
    assert ("NodeName=node2 NodeAddr=10.1.10.242 CPUs=4 Sockets=1 CoresPerSocket=4 "
            "ThreadsPerCore=1 RealMemory=3794") in lines
    assert ("PartitionName=main Nodes=node0,node1,node2 Default=YES MaxTime=UNLIMITED "
            "MaxCPUsPerNode=2 State=UP") in lines


@pytest.mark.parametrize(("slots", "cpus", "refused"), [
    (4, (4, 4, 4), ""),
    (2, (4, 2, 4), ""),
    (3, (4, 2, 4), "3 is more than the CPUs of node1 (2), as slurmd -C reports them"),
    (8, (4, 4, None), "8 is more than the CPUs of node0 (4), node1 (4), as"),  # node2 not read
])
def test_slots_beyond_a_nodes_cpus_are_refused(tmp_path: Path, slots: int,
                                               cpus: tuple[int | None, ...], refused: str) -> None:
    cluster = spec(tmp_path, f"slots = {slots}")
    states = {n: node_state(n, dataclasses.replace(PI4, cpus=c, cores_per_socket=c) if c
                            else None) for n, c in zip(NODES, cpus, strict=True)}
    for name in NODES:
        blocked = [c.blocked for c in plan(cluster, name, states).values() if c.blocked]
        assert len(blocked) == bool(refused) and (not refused or refused in blocked[0])


def test_controller_and_computing_nodes_as_written(tmp_path: Path) -> None:
    cluster = spec(tmp_path, 'controller = "node1"\nnodes = ["node1", "node2"]')
    text = written(plan(cluster, "node0", everyone()), slurm.SLURM_CONF)
    assert "SlurmctldHost=node1(10.1.10.241)" in text
    assert [ln.split()[0] for ln in text.splitlines() if ln.startswith("NodeName=")] == [
        "NodeName=node1", "NodeName=node2"]
    assert "MaxTime=UNLIMITED" in text


def test_a_node_not_read_keeps_its_line_from_the_controller(tmp_path: Path) -> None:
    cluster = spec(tmp_path)
    states = converged(cluster, everyone())
    del states["node2"]  # it did not answer
    assert plan(cluster, "node1", states) == {}
    fresh = everyone()
    del fresh["node2"]  # and never did: one CPU until it answers
    text = written(plan(cluster, "node1", fresh), slurm.SLURM_CONF)
    assert "NodeName=node2 NodeAddr=10.1.10.242 CPUs=1" in text.splitlines()


@pytest.mark.parametrize(("seconds", "written_as"), [
    (60, "0-00:01:00"), (5400, "0-01:30:00"), (86400, "1-00:00:00"), (90061, "1-01:01:01")])
def test_time_limits_as_slurm_writes_them(seconds: int, written_as: str) -> None:
    assert slurm.duration(seconds) == written_as


# -- configless kept out, cgroup.conf ------------------------------------------------------------


def test_slurmd_options_have_no_conf_server_and_a_drift_is_repaired(tmp_path: Path) -> None:
    cluster = spec(tmp_path)
    states = converged(cluster, everyone())
    assert plan(cluster, "node1", states) == {}
    states["node1"].files[slurm.SLURMD_DEFAULTS] = b'SLURMD_OPTIONS="--conf-server node0"\n'
    change = plan(cluster, "node1", states)[f"slurm {slurm.SLURMD_DEFAULTS}"]
    assert '-SLURMD_OPTIONS="--conf-server node0"' in change.diff
    assert '+SLURMD_OPTIONS=""' in change.diff
    assert change.steps[-1].arguments["commands"][-1] == "systemctl restart slurmd"


def test_a_node_without_slurmd_gets_no_slurmd_options(tmp_path: Path) -> None:
    cluster = spec(tmp_path, 'nodes = ["node1", "node2"]')
    assert f"slurm {slurm.SLURMD_DEFAULTS}" not in plan(cluster, "node0", everyone())


@pytest.mark.parametrize(("version", "content"), [
    (BOOKWORM, None),  # 22.05 reads no cgroup.conf without a cgroup plugin
    ("23.11.4-1", None),
    ("24.05.2-1", "CgroupPlugin=disabled"),
    (TRIXIE, "CgroupPlugin=disabled"),
    (None, None),
])
def test_cgroup_conf_turns_cgroups_off_where_slurm_reads_it(version: str | None,
                                                            content: str | None) -> None:
    got = slurm.cgroup_conf(version)
    assert (got.splitlines()[-1] if got else None) == content


def test_a_foreign_cgroup_conf_is_left_alone_ours_is_removed(tmp_path: Path) -> None:
    cluster = spec(tmp_path)
    states = converged(cluster, everyone())
    states["node1"].files[slurm.CGROUP_CONF] = b"CgroupAutomount=yes\n"
    assert plan(cluster, "node1", states) == {}
    states["node1"].files[slurm.CGROUP_CONF] = (slurm.HEADER + "CgroupPlugin=disabled\n").encode()
    assert plan(cluster, "node1", states)[f"slurm {slurm.CGROUP_CONF}"].action == "remove"


# -- the munge key ------------------------------------------------------------------------


def test_the_munge_key_goes_0400_munge_and_is_never_shown(tmp_path: Path) -> None:
    cluster = spec(tmp_path)
    change = plan(cluster, "node1", everyone())["slurm munge key"]
    assert change.sensitive and change.action == "create"
    arguments = change.steps[0].arguments
    assert (arguments["dest"], arguments["user"], arguments["group"], arguments["mode"]) == (
        slurm.MUNGE_KEY, "munge", "munge", "0400")
    assert arguments["src"].getvalue() == base64.b64decode(KEY)
    assert KEY not in repr(change.attributes) and not change.diff


def test_a_changed_munge_key_is_planned_sensitive(tmp_path: Path) -> None:
    cluster = spec(tmp_path)
    states = converged(cluster, everyone())
    states["node2"].digests[slurm.MUNGE_KEY] = hashlib.sha256(b"another key").hexdigest()
    change = plan(cluster, "node2", states)["slurm munge key"]
    assert change.action == "update"
    assert [a.shown() for a in change.attributes] == [(SENSITIVE, SENSITIVE)]
    assert change.steps[-1].arguments["commands"] == ["systemctl restart munge"]


def test_a_loose_munge_key_is_tightened(tmp_path: Path) -> None:
    cluster = spec(tmp_path)
    states = converged(cluster, everyone())
    states["node2"].stats[slurm.MUNGE_KEY] = Stat("root", "root", "0644", 0, 0, "regular file")
    change = plan(cluster, "node2", states)["slurm munge key"]
    assert [(a.name, a.after) for a in change.attributes] == [("owner, mode", "munge:munge 0400")]


def test_without_the_key_a_plan_says_apply_generates_it(tmp_path: Path) -> None:
    cluster = spec(tmp_path, key=None)
    change = plan(cluster, "node1", everyone())["slurm munge key"]
    assert not change.steps
    assert change.attributes[0].after == "generated at apply"


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_bad_munge_key_is_refused_without_showing_it(tmp_path: Path, value: str) -> None:
    cluster = spec(tmp_path, key=value)
    change = plan(cluster, "node1", everyone())["slurm munge key"]
    assert change.blocked.startswith("secret 'munge_key'")
    assert value not in change.blocked


def test_generated_once_into_the_secrets_file(tmp_path: Path) -> None:
    cluster = spec(tmp_path, key=None)
    secrets = tmp_path / "secrets.toml"
    notes = slurm.generate_missing(cluster, secrets)
    assert notes == [f"generated the munge key, kept in {secrets} as munge_key"]
    key = slurm.munge_key(cluster)
    assert key is not None and len(key) == slurm.KEY_BYTES
    assert f'munge_key = "{base64.b64encode(key).decode()}"' in secrets.read_text()
    assert oct(secrets.stat().st_mode & 0o777) == "0o600"
    again = load(tmp_path / "cluster.toml")
    assert slurm.generate_missing(again, secrets) == []
    assert slurm.munge_key(again) == key


def test_no_key_is_generated_without_slurm(tmp_path: Path, cluster: Cluster) -> None:
    assert not slurm.missing(cluster)


# -- packages, daemons, reads ------------------------------------------------------------------


@pytest.mark.parametrize(("table", "node", "packages"), [
    ("", "node0", ["munge", "slurmctld", "slurmd", "slurm-client"]),
    ("", "node1", ["munge", "slurmd"]),
    ('nodes = ["node1", "node2"]', "node0", ["munge", "slurmctld", "slurm-client"]),
    ('controller = "node2"\nnodes = ["node1"]', "node2", ["munge", "slurmctld"]),
    ('controller = "node2"\nnodes = ["node1"]', "node0", ["munge", "slurm-client"]),
])
def test_packages_by_role(tmp_path: Path, table: str, node: str, packages: list[str]) -> None:
    cluster = spec(tmp_path, table)
    assert [p for p, c in needed(cluster, cluster.node(node)).items() if c == "slurm"] == packages


def test_a_node_outside_slurm_gets_and_reads_nothing_of_it(tmp_path: Path) -> None:
    cluster = spec(tmp_path, 'nodes = ["node1"]')
    node2 = cluster.node("node2")
    assert plan(cluster, "node2", everyone()) == {}
    assert "slurm" not in needed(cluster, node2).values()
    read = reads(cluster, node2)
    assert slurm.SLURM_CONF not in read.files and slurm.MUNGE_KEY not in read.secret_files
    assert slurm.TOPOLOGY not in read.commands and slurm.MEMINFO not in read.kernel
    assert not set(slurm.UNITS) & set(read.units)


def test_the_key_is_read_by_digest_and_hardware_only_where_slurmd_runs(tmp_path: Path) -> None:
    cluster = spec(tmp_path, 'nodes = ["node1", "node2"]')
    node0, node1 = reads(cluster, cluster.node("node0")), reads(cluster, cluster.node("node1"))
    assert slurm.MUNGE_KEY in node0.secret_files and slurm.MUNGE_KEY not in node0.files
    assert (slurm.TOPOLOGY in node0.commands, slurm.TOPOLOGY in node1.commands) == (False, True)
    assert (slurm.MEMINFO in node0.kernel, slurm.MEMINFO in node1.kernel) == (False, True)
    versions = [tuple(v for v in p.versions if v.startswith("slurm")) for p in (node0, node1)]
    assert versions == [("slurmctld", "slurm-client"), ("slurmd",)]


def test_converged_is_no_change_and_a_stopped_daemon_is_started(tmp_path: Path) -> None:
    cluster = spec(tmp_path)
    states = converged(cluster, everyone())
    for name in NODES:
        assert plan(cluster, name, states) == {}
    states["node1"].units["slurmd"] = ("enabled", "inactive")
    (change,) = plan(cluster, "node1", states).values()
    assert change.resource == "slurm daemons"
    assert change.steps[0].arguments["commands"] == [
        "systemctl enable --quiet munge slurmd", "systemctl restart slurmd"]


@pytest.mark.parametrize(("before", "after", "slurmd"), [
    ("", 'max_time = "2h"', "reload-or-restart"),  # the partition only: slurmd re-reads it
    ("", "slots = 1", "reload-or-restart"),
    ("", 'partition = "pis"', "reload-or-restart"),
    ("", 'nodes = ["node0", "node1"]', "restart"),  # a node removed: Slurm wants restarts
    ('nodes = ["node0", "node1"]', "", "restart"),  # and added
])
def test_a_changed_slurm_conf_restarts_slurmctld_and_slurmd_rereads_a_partition(
        tmp_path: Path, before: str, after: str, slurmd: str) -> None:
    states = converged(spec(tmp_path, before), everyone())
    steps = plan(spec(tmp_path, after), "node0", states)[f"slurm {slurm.SLURM_CONF}"].steps
    assert steps[-1].arguments["commands"] == [
        "systemctl enable --quiet munge slurmctld slurmd", "systemctl restart slurmctld",
        f"systemctl {slurmd} slurmd"]


def test_munge_down_is_started_with_the_daemons_a_changed_slurm_conf_restarts(
        tmp_path: Path) -> None:
    """munge is restarted by a new key only: down with the key unchanged, the restart that
    follows a new slurm.conf starts it, or every slurmd restarted fails to authenticate."""
    states = converged(spec(tmp_path), everyone())
    states["node1"].units["munge"] = ("enabled", "inactive")
    steps = plan(spec(tmp_path, 'max_time = "2h"'), "node1", states)[
        f"slurm {slurm.SLURM_CONF}"].steps
    assert steps[-1].arguments["commands"] == [
        "systemctl enable --quiet munge slurmd", "systemctl start munge",
        "systemctl reload-or-restart slurmd"]
    (change,) = plan(spec(tmp_path), "node1", states).values()  # nothing else to do
    assert change.steps[0].arguments["commands"][:2] == [
        "systemctl enable --quiet munge slurmd", "systemctl start munge"]

def test_a_partition_change_alone_is_one_partition_line() -> None:
    conf = "A=1\nNodeName=node1 CPUs=4\nPartitionName=main Nodes=node1 State=UP\n"
    assert slurm.partition_only(conf, conf.replace("State=UP", "MaxCPUsPerNode=1 State=UP"))
    assert not slurm.partition_only(conf, conf.replace("CPUs=4", "CPUs=2"))
    assert not slurm.partition_only(conf, conf.replace("A=1", "A=2"))
    assert not slurm.partition_only(None, conf)  # the first file: slurmd starts on it


# -- versions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("versions", "refused"), [
    ((BOOKWORM, BOOKWORM, BOOKWORM), None),
    ((BOOKWORM, "21.08.5-2", "20.11.9-1"), None),  # two releases older: supported
    ((BOOKWORM, BOOKWORM, None), None),  # not known: apt says so when it installs
    ((BOOKWORM, BOOKWORM, TRIXIE), "slurmd 24.11 on node2"),  # newer than the controller
    ((TRIXIE, BOOKWORM, TRIXIE), "slurmd 22.05 on node1"),  # four releases older
    ((BOOKWORM, "1:24.11.5-1", BOOKWORM), "slurmd 24.11 on node1"),  # an epoch hides nothing
])
def test_versions_slurm_does_not_support_together_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, versions: tuple[str | None, ...],
        refused: str | None) -> None:
    monkeypatch.chdir(tmp_path)  # the spec's managed file is read beside it
    cluster = spec(tmp_path)
    states = {n: node_state(n, version=v) for n, v in zip(NODES, versions, strict=True)}
    for name in NODES:
        found = plan_node(cluster, cluster.node(name), states[name],
                          ClusterFacts(observed=states))
        blocked = [c.blocked for c in found.blocked if c.resource == "slurm"]
        if refused is None:
            assert blocked == []
        else:
            (why,) = blocked
            assert why.startswith(f"slurm.nodes: slurmctld {slurm.release(versions[0] or '')} "
                                  "on node0 cannot work with ")
            assert refused in why
            assert not [c for c in found.changes if c.resource.startswith("slurm /")]


@pytest.mark.parametrize(("version", "release"), [
    (BOOKWORM, "22.05"), (TRIXIE, "24.11"), ("1:24.11.5-1", "24.11"), ("23.02", "23.02")])
def test_debian_versions_as_releases(version: str, release: str) -> None:
    assert slurm.release(version) == release


# -- the hardware read ---------------------------------------------------------------------


PI4_MEMINFO = ["MemTotal:        3884836 kB", "MemFree:         3500000 kB"]
LSCPU = ["# The following is the parsable format, which can be fed to other", "# Socket,Core"]


@pytest.mark.parametrize(("memory", "topology", "hardware"), [
    (PI4_MEMINFO, [*LSCPU, "0,0", "0,1", "0,2", "0,3"], Hardware(4, 1, 4, 1, 3793)),  # a Pi 4
    (["MemTotal: 24683584 kB"], ["0,0", "0,0", "0,1", "0,1"], Hardware(4, 1, 2, 2, 24105)),
    (["MemTotal: 8000000 kB"], ["0,0", "0,1", "1,2", "1,3"], Hardware(4, 2, 2, 1, 7812)),
    ([], ["0,0"], None),
    (["MemFree: 100 kB"], ["0,0"], None),
    (PI4_MEMINFO, LSCPU, None),  # lscpu listed no CPU
    (PI4_MEMINFO, [], None),
])
def test_hardware_as_slurmd_reports_it(memory: list[str], topology: list[str],
                                       hardware: Hardware | None) -> None:
    assert Hardware.parse(memory, topology) == hardware


def test_the_hardware_is_read_in_the_nodes_one_read_only_where_slurmd_runs(
        tmp_path: Path) -> None:
    cluster = spec(tmp_path, 'nodes = ["node1"]')
    asked = script(reads(cluster, cluster.node("node1")))
    assert "lscpu -p=SOCKET,CORE" in asked and "/proc/meminfo" in asked
    assert "lscpu" not in script(reads(cluster, cluster.node("node0")))
    observed = parse(["@@picl kernel /proc/meminfo", "MemTotal:        3884836 kB",
                      "@@picl command lscpu", *LSCPU, "0,0", "0,1"])
    assert slurm.hardware(observed) == Hardware(2, 1, 2, 1, 3793)
