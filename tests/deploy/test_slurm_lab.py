"""[slurm] on lab nodes: after one apply, jobs queue and run on every node as the personal user.

The reference cluster with examples/mpi.toml and examples/slurm.toml, applied once. The
container nodes share this machine's kernel and have no NFS: the MPI program is copied to every
node's same path (as the MPI lab test does), and a job's output lands in the submit directory
of the node its batch script ran on (node0, the allocation's first).
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, SPEC, Lab, running_lab, session_lab_name
from tests.deploy.test_mpi_lab import Mpi
from tests.reconciler.test_agent_lab import Cluster as Agent
from tests.reconciler.test_agent_lab import lab_spec

pytestmark = pytest.mark.lab

NODES = ("node0", "node1", "node2")
WAIT = 240  # seconds to wait for the controller to see a change (SlurmdTimeout is 60)


class Slurm(Mpi):
    """The MPI lab's ways in (secrets, picl, as_user, build), on the spec with [slurm] too."""

    def __init__(self, lab: Lab, root: Path):
        super().__init__(lab, root)
        self.root = root
        self.spec = spec(root)

    def states(self) -> dict[str, str]:
        """Each computing node's state, as sinfo on node0 shows it."""
        listed = self.lab.ssh("node0", "sinfo -N -h -o '%N %T'").stdout.split()
        return dict(zip(listed[::2], listed[1::2], strict=True))

    def wait_for(self, node: str, state: str) -> None:
        """Bounded: until sinfo shows `node` in `state` (never asserted on time)."""
        deadline = time.monotonic() + WAIT
        while self.states().get(node) != state:
            assert time.monotonic() < deadline, f"{node}: {self.states()}, not {state}"
            time.sleep(3)

    def checks(self) -> dict[str, dict[str, dict[str, str]]]:
        """picl check --json: node -> check name -> its level, value and detail."""
        found = json.loads(self.picl("check", "--json").stdout)
        return {n["node"]: {c["check"]: c for c in n["checks"]} for n in found["nodes"]}


def with_slurm(base: str, **settings: str) -> str:
    """`base`, a cluster.toml's text, with examples/mpi.toml and examples/slurm.toml, [slurm]'s
    `settings` written over the example's."""
    slurm = (REPO / "examples" / "slurm.toml").read_text()
    for key, value in settings.items():
        slurm = re.sub(rf"^#? ?{key} = .*$", f"{key} = {value}", slurm, count=1, flags=re.M)
    return base + (REPO / "examples" / "mpi.toml").read_text() + slurm


def spec(root: Path, **settings: str) -> Path:
    """The reference cluster.toml `with_slurm`, in `root`."""
    path = root / "cluster.toml"
    path.write_text(with_slurm(SPEC.read_text(), **settings))
    return path


@pytest.fixture(scope="module")
def slurm_lab(lab_host: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slurm]:
    root = tmp_path_factory.mktemp("slurm")
    with running_lab(session_lab_name("slurm"), spec=spec(root)) as lab:
        cluster = Slurm(lab, root)
        applied = cluster.picl("apply", "--yes")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        yield cluster


def test_one_apply_every_node_idle_and_srun_runs_once_on_each(slurm_lab: Slurm) -> None:
    for node in NODES:
        slurm_lab.wait_for(node, "idle")  # each slurmd registers when it has started
    ran = slurm_lab.as_user("srun -N 3 hostname")
    assert sorted(ran.stdout.split()) == sorted(NODES)
    for node in NODES:  # a credential of node0's munge decodes on every node
        decoded = slurm_lab.as_user(f"munge -n | ssh {node} unmunge")
        assert "STATUS:          Success (0)" in decoded.stdout
    # slurm.conf is the same everywhere, each node as its slurmd -C reports it.
    confs = {slurm_lab.lab.ssh(n, "cat /etc/slurm/slurm.conf").stdout for n in NODES}
    assert len(confs) == 1
    reported = slurm_lab.lab.ssh("node1", "slurmd -C").stdout.split("\n")[0].split()
    (line,) = [ln for ln in confs.pop().splitlines() if ln.startswith("NodeName=node1 ")]
    assert {w.split("=")[0]: w for w in line.split()}["RealMemory"] in reported
    assert f"CPUs={slurm_lab.lab.ssh('node1', 'nproc').stdout.strip()}" in reported
    key = slurm_lab.lab.ssh("node1", "stat -c '%U:%G %a' /etc/munge/munge.key").stdout.strip()
    assert key == "munge:munge 400"
    assert slurm_lab.picl("plan", "--detailed-exitcode").returncode == 0
    checks = slurm_lab.checks()
    assert {n: (c["slurm"]["value"], c["munge"]["level"]) for n, c in checks.items()} == \
        dict.fromkeys(NODES, ("idle", "OK"))


def test_an_sbatch_job_runs_the_mpi_program_across_every_node(slurm_lab: Slurm) -> None:
    slurm_lab.build("pi")  # in federico's home on every node: the lab has no NFS
    job = "#!/bin/sh\n#SBATCH -N 3\n#SBATCH --ntasks-per-node=1\n#SBATCH -o pi.out\nmpirun ./pi\n"
    slurm_lab.as_user(f"printf %s {shlex.quote(job)} > pi.sbatch && sbatch --wait pi.sbatch")
    out = slurm_lab.as_user("cat pi.out").stdout
    assert set(re.findall(r"^rank \d+ of 3 on (\S+)$", out, re.MULTILINE)) == set(NODES), out
    (value,) = re.findall(r"^pi = ([\d.]+)", out, re.MULTILINE)
    assert abs(float(value) - 3.141592653589793) < 1e-9


def test_a_munge_key_changed_by_hand_fails_check_and_is_planned_sensitive(
        slurm_lab: Slurm) -> None:
    lab = slurm_lab.lab
    lab.ssh("node2", "head -c 1024 /dev/urandom > /etc/munge/munge.key && "
                     "systemctl restart munge")
    assert slurm_lab.checks()["node2"]["munge"]["level"] == "FAIL"  # what one key prevents
    assert slurm_lab.as_user("munge -n | ssh node2 unmunge", check=False).returncode != 0
    planned = slurm_lab.picl("plan")
    assert "~ slurm munge key" in planned.stdout
    assert "content: (sensitive) -> (sensitive)" in planned.stdout
    key = re.search(r'^munge_key = "(.+)"$', slurm_lab.secrets.read_text(), re.M)
    assert key and key[1] not in planned.stdout + planned.stderr
    applied = slurm_lab.picl("apply", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert key[1] not in applied.stdout + applied.stderr
    assert slurm_lab.checks()["node2"]["munge"]["level"] == "OK"


def test_a_node_powered_off_is_down_and_comes_back_idle_by_itself(slurm_lab: Slurm) -> None:
    lab = slurm_lab.lab
    assert lab.picl("lab", "kill", "node2").returncode == 0
    slurm_lab.wait_for("node2", "down*")
    found = slurm_lab.checks()
    assert (found["node2"]["slurm"]["level"], found["node2"]["munge"]["level"]) == ("FAIL",
                                                                                    "FAIL")
    assert found["node1"]["slurm"]["level"] == "OK"
    started = lab.picl("lab", "start", "node2")
    assert started.returncode == 0, started.stdout + started.stderr
    slurm_lab.wait_for("node2", "idle")  # no scontrol: ReturnToService=2
    assert slurm_lab.checks()["node2"]["slurm"]["level"] == "OK"


def test_a_partition_change_converges_without_losing_a_running_job(slurm_lab: Slurm) -> None:
    submitted = slurm_lab.as_user("sbatch --parsable -w node1 -o kept.out "
                                  "--wrap 'sleep 30; echo kept'")
    job = submitted.stdout.strip()
    deadline = time.monotonic() + WAIT
    while "JobState=RUNNING" not in slurm_lab.as_user(f"scontrol show job {job}").stdout:
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(2)

    spec(slurm_lab.root, max_time='"2h"')
    applied = slurm_lab.picl("apply", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    confs = {slurm_lab.lab.ssh(n, "cat /etc/slurm/slurm.conf").stdout for n in NODES}
    assert len(confs) == 1
    assert "MaxTime=02:00:00" in slurm_lab.as_user("scontrol show partition main").stdout
    shown = slurm_lab.as_user(f"scontrol show job {job}").stdout
    assert re.search(r"JobState=(RUNNING|COMPLETED)", shown), shown  # not lost, not requeued
    deadline = time.monotonic() + WAIT
    while "JobState=COMPLETED" not in slurm_lab.as_user(f"scontrol show job {job}").stdout:
        assert time.monotonic() < deadline, slurm_lab.as_user(f"scontrol show job {job}").stdout
        time.sleep(3)
    assert slurm_lab.lab.ssh("node1", "cat ~federico/kept.out").stdout.strip() == "kept"


def test_slots_limit_what_a_job_gets_of_each_node_and_no_node_drains(slurm_lab: Slurm) -> None:
    packed = slurm_lab.as_user("srun -n 3 hostname").stdout.split()
    assert len(set(packed)) < 3  # each node's 2 CPUs: three tasks fit on two nodes
    spec(slurm_lab.root, slots="1", max_time='"2h"')
    planned = slurm_lab.picl("plan")
    applied = slurm_lab.picl("apply", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    confs = {slurm_lab.lab.ssh(n, "cat /etc/slurm/slurm.conf").stdout for n in NODES}
    assert len(confs) == 1
    for node in NODES:  # `CPUs=1` alone, as slots were once written, drains them on 22.05
        slurm_lab.wait_for(node, "idle")
    assert "MaxTime=0-02:00:00 MaxCPUsPerNode=1 State=UP" in planned.stdout
    assert "+NodeName=" not in planned.stdout  # the nodes' lines stay as slurmd -C reports
    spread = slurm_lab.as_user("srun -n 3 hostname").stdout.split()
    assert sorted(spread) == sorted(NODES)  # one task a node: its one slot
    assert "MaxCPUsPerNode=1" in slurm_lab.as_user("scontrol show partition main").stdout
    cores = slurm_lab.lab.ssh("node1", "nproc").stdout.strip()
    assert f"CPUTot={cores} " in slurm_lab.as_user("scontrol show node node1").stdout


def test_the_agent_converges_a_pushed_slot_and_partition_change_and_the_job_running_lives(
        slurm_lab: Slurm) -> None:
    (slurm_lab.root / "agent").mkdir()
    agent = Agent(slurm_lab.lab, slurm_lab.root / "agent")
    agent.secrets = slurm_lab.secrets  # the lab's own munge and cluster keys
    installed = agent.picl("agent", "install")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    # What the last test left, as the agent's spec (no GitHub: the lab has no uplink).
    first = agent.commit(with_slurm(lab_spec(), slots="1", max_time='"2h"'), "slurm")
    agent.push()
    agent.applied(first)

    submitted = slurm_lab.as_user("sbatch --parsable -w node1 -o pushed.out "
                                  "--wrap 'sleep 200; echo pushed'")
    job = submitted.stdout.strip()
    slurm_lab.wait_for("node1", "mixed")  # running: one of its two CPUs
    pushed = agent.commit(with_slurm(lab_spec(), slots="2", max_time='"3h"'), "slots, 3h")
    agent.push()
    agent.applied(pushed)

    confs = {slurm_lab.lab.ssh(n, "cat /etc/slurm/slurm.conf").stdout for n in NODES}
    assert len(confs) == 1
    assert "MaxTime=0-03:00:00 MaxCPUsPerNode=2 State=UP" in confs.pop()
    partition = slurm_lab.as_user("scontrol show partition main").stdout
    assert "MaxTime=03:00:00" in partition and "MaxCPUsPerNode=2" in partition
    shown = slurm_lab.as_user(f"scontrol show job {job}").stdout
    assert "JobState=RUNNING" in shown and "Restarts=0" in shown, shown  # the change was under it
    deadline = time.monotonic() + WAIT
    while "JobState=COMPLETED" not in (shown := slurm_lab.as_user(f"scontrol show job {job}")
                                       .stdout):
        assert time.monotonic() < deadline and "JobState=RUNNING" in shown, shown
        time.sleep(3)
    assert "Restarts=0" in shown, shown  # never requeued
    assert slurm_lab.lab.ssh("node1", "cat ~federico/pushed.out").stdout.strip() == "pushed"
    for node in NODES:
        slurm_lab.wait_for(node, "idle")
