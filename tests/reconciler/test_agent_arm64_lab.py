"""The agent on an arm64 primary (a Raspberry Pi's CPU, emulated by qemu-user): installed from
a wheelhouse built here for aarch64, offline, and converging the lab on a push.

NetworkManager cannot run under qemu-user (docs/lab.md): the lab sets node0's address on its
cable and stands in for nmcli there, so picl's network resource converges on node0 as on a
board's NetworkManager, and the plan is empty once applied.

`make test-arm64`, not `make test`: the arm64 image's cold build runs every package's
maintainer scripts emulated (84 minutes on two cores), more than the whole suite's budget.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from picl.lab import Cards
from tests.conftest import running_lab, session_lab_name
from tests.reconciler.test_agent_lab import Cluster, lab_spec, shells

pytestmark = [pytest.mark.lab, pytest.mark.arm64]

# The whole plan runs on the emulated primary, Python about six times slower than native;
# a first apply there installs the spec's packages, every maintainer script emulated.
WAIT = 900.0
EMULATED = 2400.0
# A push is git and sshd emulated on the primary, beside the agent's first start (it compiles
# what it imports) and the timers a freshly booted node runs (man-db's index, apt's).
PUSH = 600.0


@pytest.fixture(scope="module")
def cluster(lab_host: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The reference lab with node0 an arm64 board, applied once (it makes the users)."""
    root = tmp_path_factory.mktemp("agent-arm64")
    spec = root / "cluster.toml"
    spec.write_text(lab_spec())
    cards = Cards.parse([], ["node0=arm64"])
    with running_lab(session_lab_name("agent-arm64"), spec, cards=cards) as lab:
        cluster = Cluster(lab, root)
        applied = cluster.picl("apply", "--yes", timeout=EMULATED)
        assert "Apply: 3 nodes converged, 0 failed" in applied.stdout, applied.stdout
        yield cluster


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> str:
    """What `picl --lab agent install` said."""
    result = cluster.picl("agent", "install", timeout=EMULATED)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_primary_is_arm64_and_has_no_way_out(cluster: Cluster) -> None:
    assert cluster.ssh("node0", "uname -m").strip() == "aarch64"
    assert cluster.ssh("node1", "uname -m").strip() == "x86_64"
    # Offline: no route anywhere but the cluster's subnet, so pip could reach no index.
    assert cluster.ssh("node0", "ip -4 route show default") == ""


def test_the_applied_lab_plans_nothing_network_included(cluster: Cluster) -> None:
    plan = cluster.picl("plan", "--detailed-exitcode", timeout=EMULATED)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    # picl's profile is on node0, as NetworkManager would read it, and its address is up.
    assert "address1=10.1.10.240/24" in cluster.ssh(
        "node0", "cat /etc/NetworkManager/system-connections/picl-wired.nmconnection")
    assert "10.1.10.240/24" in cluster.ssh("node0", "ip -4 -o address show dev eth0")


def test_the_agent_is_installed_from_the_aarch64_wheelhouse(cluster: Cluster,
                                                            installed: str) -> None:
    assert "aarch64" in installed, installed
    wheels = cluster.ssh("node0", "ls /opt/picl/wheelhouse").split()
    built = [w for w in wheels if not w.endswith("-any.whl")]
    assert built and all("aarch64" in w for w in built), wheels
    assert any(w.startswith("pydantic_core-") for w in built)
    # The venv's compiled modules load on the node's own architecture.
    loaded = cluster.ssh("node0", "/opt/picl/venv/bin/python -c 'import platform, pydantic_core; "
                                  "print(platform.machine(), pydantic_core.__version__)'")
    assert loaded.split()[0] == "aarch64"
    assert cluster.ssh("node0", "systemctl is-active picl-agent").strip() == "active"


def test_a_push_converges_the_lab_from_the_arm64_primary(cluster: Cluster, installed: str) -> None:
    first = cluster.commit(lab_spec(), "the reference cluster")
    cluster.push(timeout=PUSH)
    cluster.applied(first, timeout=WAIT)
    sha = cluster.commit(lab_spec(shell="/bin/sh"), "federico: /bin/sh")
    cluster.push(timeout=PUSH)
    status = cluster.applied(sha, timeout=WAIT)
    assert shells(cluster) == {"/bin/sh"}
    assert [n["state"] for n in status["nodes"]] == ["converged"] * 3
