"""[mpi] on lab nodes: after one apply, plain `mpirun` on node0 as the personal user uses
every node, over the wired network, with no flag and no prompt.

The nodes have an uplink besides the wired network: a second interface on another bridge that
isolates its ports, like a Wi-Fi with client isolation. The container lab has no NFS: programs
are compiled on node0 and copied to the same path on every node with scp and the cluster key
(Open MPI 4.1's own --preload-binary fails in this lab: "could not access or execute ./pi").
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, SPEC, Lab, picl, running_lab, session_lab_name
from tests.deploy.reference import lab_environ, lab_secrets

pytestmark = pytest.mark.lab

NODES = ("node0", "node1", "node2")
JOB_TIMEOUT = 20  # seconds: the unpinned job hangs, it must not hold the test


class Mpi:
    """The reference cluster with examples/mpi.toml on a lab with an uplink, applied once."""

    def __init__(self, lab: Lab, root: Path):
        self.lab = lab
        self.spec = spec(root)
        self.secrets = lab_secrets(root)
        self.environ = lab_environ(root, "")

    def picl(self, *args: str) -> subprocess.CompletedProcess[str]:
        with pytest.MonkeyPatch.context() as patch:
            for key, value in self.environ.items():
                patch.setenv(key, value)
            return picl("--secrets", str(self.secrets), "--lab", *args, spec=self.spec,
                        lab_name=self.lab.name)

    def as_user(self, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A shell command as federico, in his home on node0."""
        quoted = command.replace("'", "'\\''")
        return self.lab.ssh("node0", f"runuser -u federico -- sh -c 'cd && {quoted}'",
                            check=check, timeout=JOB_TIMEOUT + 60)

    def build(self, program: str) -> None:
        """Compile examples/PROGRAM.c on node0 and put the binary in every node's same path."""
        source = (REPO / "examples" / f"{program}.c").read_text()
        self.lab.ssh("node0", f"cat > /tmp/{program}.c <<'EOF'\n{source}EOF")
        copies = " && ".join(f"scp -q {program} {n}:" for n in NODES if n != "node0")
        self.as_user(f"mpicc -O2 -o {program} /tmp/{program}.c -lm && {copies}")

    def run(self, program: str) -> subprocess.CompletedProcess[str]:
        return self.as_user(f"timeout {JOB_TIMEOUT} mpirun {program}", check=False)


def spec(root: Path) -> Path:
    """The reference cluster.toml with the compute layer of examples/mpi.toml, in `root`."""
    path = root / "cluster.toml"
    path.write_text(SPEC.read_text() + (REPO / "examples" / "mpi.toml").read_text())
    return path


@pytest.fixture(scope="module")
def mpi_lab(lab_host: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mpi]:
    root = tmp_path_factory.mktemp("mpi")
    with running_lab(session_lab_name("mpi"), spec=spec(root), uplink=True) as lab:
        cluster = Mpi(lab, root)
        applied = cluster.picl("apply", "--yes")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        yield cluster


def test_the_nodes_have_an_uplink_where_they_cannot_reach_each_other(mpi_lab: Mpi) -> None:
    wlan = mpi_lab.lab.ssh("node0", "ip -4 -o addr show dev wlan0").stdout
    assert "192.168.50.10/24" in wlan
    assert "via 192.168.50.1 dev wlan0" in mpi_lab.lab.ssh("node0", "ip route").stdout
    assert mpi_lab.lab.ssh("node0", "ping -c1 -W1 192.168.50.1", check=False).returncode == 0
    assert mpi_lab.lab.ssh("node0", "ping -c1 -W1 192.168.50.11", check=False).returncode != 0


def test_one_apply_writes_the_hostfile_with_each_nodes_cores(mpi_lab: Mpi) -> None:
    cores = int(mpi_lab.lab.ssh("node1", "nproc").stdout)
    hostfile = mpi_lab.lab.ssh("node0", "cat /etc/openmpi/openmpi-default-hostfile").stdout
    assert [line for line in hostfile.splitlines() if not line.startswith("#")] == [
        f"{n} slots={cores}" for n in NODES]
    assert mpi_lab.picl("plan", "--detailed-exitcode").returncode == 0


def test_plain_mpirun_runs_on_every_node(mpi_lab: Mpi) -> None:
    cores = int(mpi_lab.lab.ssh("node1", "nproc").stdout)
    ran = mpi_lab.as_user(f"timeout {JOB_TIMEOUT} mpirun -np {cores * len(NODES)} hostname")
    assert sorted(ran.stdout.split()) == sorted(n for n in NODES for _ in range(cores))


def test_pi_is_right_to_1e_9_and_every_node_computes(mpi_lab: Mpi) -> None:
    mpi_lab.build("pi")
    ran = mpi_lab.run("./pi")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    hosts = set(re.findall(r"^rank \d+ of \d+ on (\S+)$", ran.stdout, re.MULTILINE))
    assert hosts == set(NODES)
    (value,) = re.findall(r"^pi = ([\d.]+)", ran.stdout, re.MULTILINE)
    assert abs(float(value) - 3.141592653589793) < 1e-9


def test_the_pinning_is_what_makes_jobs_run_beside_the_uplink(mpi_lab: Mpi) -> None:
    mpi_lab.build("bcast")
    pinned = mpi_lab.run("./bcast")
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    assert pinned.stdout.count("received") == len(re.findall(r"^rank", pinned.stdout, re.M))

    # By hand, on every node: the transports' pinning and IPv6 switch gone.
    for node in NODES:
        mpi_lab.lab.ssh(node, "sed -i '/_if_include\\|_family/d' "
                              "/etc/openmpi/openmpi-mca-params.conf")
    unpinned = mpi_lab.run("./bcast")
    assert unpinned.returncode != 0  # it hangs (timeout) or fails
    assert "192.168.50." in unpinned.stdout + unpinned.stderr or unpinned.returncode == 124

    planned = mpi_lab.picl("plan", "--detailed-exitcode")
    assert planned.returncode == 2
    assert "+btl_tcp_if_include = 10.1.10.0/24" in planned.stdout
    repaired = mpi_lab.picl("apply", "--yes")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    again = mpi_lab.run("./bcast")
    assert again.returncode == 0, again.stdout + again.stderr


def test_check_runs_a_rank_on_every_node_and_names_the_one_that_fails(mpi_lab: Mpi) -> None:
    def mpi_checks() -> dict[str, dict]:
        result = mpi_lab.picl("check", "--json")
        return {n["node"]: next(c for c in n["checks"] if c["check"] == "mpi")
                for n in json.loads(result.stdout)["nodes"]}

    assert {n: c["level"] for n, c in mpi_checks().items()} == dict.fromkeys(NODES, "OK")
    # node2 answers ssh, but Open MPI's daemon cannot start there.
    mpi_lab.lab.ssh("node2", "mv /usr/bin/orted /usr/bin/orted.away")
    try:
        found = mpi_checks()
    finally:
        mpi_lab.lab.ssh("node2", "mv /usr/bin/orted.away /usr/bin/orted")
    assert found["node2"]["level"] == "FAIL"
    assert "no rank ran here (mpirun on node0" in found["node2"]["detail"]
