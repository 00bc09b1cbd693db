"""[mpi] planned as data: the hostfile, the parameters, the packages, the version refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from picl.deploy import mpi
from picl.deploy.plan import needed, plan_node, reads
from picl.deploy.view import ClusterFacts, NodeView
from picl.facts.node import Observed
from picl.spec import Cluster, load
from tests.deploy.clusters import small_cluster
from tests.deploy.conftest import fresh_node

BOOKWORM = "4.1.4-3+b1"
TRIXIE = "5.0.7-1"


def spec(tmp_path: Path, mpi_table: str | None = "") -> Cluster:
    """BASE with its [mpi] table's body replaced (None: no [mpi] at all)."""
    small_cluster(tmp_path, ssid=None, psk=None)
    path = tmp_path / "cluster.toml"
    text = path.read_text()
    start, end = text.index("[mpi]"), text.index("[agent]")
    table = "" if mpi_table is None else f"[mpi]\n{mpi_table}\n\n"
    path.write_text(text[:start] + table + text[end:])
    return load(path)


def node_state(name: str, cores: int | None = 4, version: str | None = BOOKWORM) -> Observed:
    observed = fresh_node(name)
    observed.kernel[mpi.STATUS] = [f"Cpus_allowed_list:\t0-{cores - 1}"] if cores else []
    observed.versions = {mpi.PACKAGE: version}
    return observed


def plan(cluster: Cluster, name: str, states: dict[str, Observed]) -> dict[str, object]:
    shared = ClusterFacts(observed=states, spec_dir=Path("."))
    view = NodeView(cluster, cluster.node(name), states[name], shared)
    return {c.resource: c for c in mpi.changes(view)}


def everyone(**kwargs: object) -> dict[str, Observed]:
    return {n: node_state(n, **kwargs) for n in ("node0", "node1", "node2")}  # type: ignore[arg-type]


def wanted(changes: dict[str, object], path: str) -> str:
    change = changes[f"mpi {path}"]
    return change.steps[0].arguments["src"].getvalue()  # type: ignore[attr-defined]


def test_hostfile_lists_the_computing_nodes_with_the_specs_slots(cluster: Cluster) -> None:
    # BASE: nodes = ["node1", "node2"], slots = 4; the primary node0 only launches.
    text = wanted(plan(cluster, "node0", everyone(cores=2)), mpi.HOSTFILE)
    assert text.startswith(mpi.HEADER)
    assert text.splitlines()[1:] == ["node1 slots=4", "node2 slots=4"]


def test_slots_default_to_each_nodes_cores(tmp_path: Path) -> None:
    cluster = spec(tmp_path, 'nodes = "all"')
    states = {"node0": node_state("node0", cores=4), "node1": node_state("node1", cores=2),
              "node2": node_state("node2", cores=8)}
    text = wanted(plan(cluster, "node1", states), mpi.HOSTFILE)
    assert text.splitlines()[1:] == ["node0 slots=4", "node1 slots=2", "node2 slots=8"]


def test_a_node_not_read_is_listed_for_open_mpi_to_count(tmp_path: Path) -> None:
    cluster = spec(tmp_path, "")
    states = everyone()
    del states["node2"]  # unreachable: no facts
    text = wanted(plan(cluster, "node0", states), mpi.HOSTFILE)
    assert text.splitlines()[1:] == ["node0 slots=4", "node1 slots=4", "node2"]


def test_the_primary_and_every_computing_node_get_the_same_files(cluster: Cluster) -> None:
    states = everyone()
    files = [{p: wanted(plan(cluster, n, states), p) for p in (mpi.HOSTFILE, mpi.PARAMETERS)}
             for n in ("node0", "node1", "node2")]
    assert files[0] == files[1] == files[2]


def test_a_node_outside_mpi_gets_nothing(tmp_path: Path) -> None:
    cluster = spec(tmp_path, 'nodes = ["node1"]')
    assert plan(cluster, "node2", everyone()) == {}
    assert needed(cluster, cluster.node("node2")) == {
        p: c for p, c in needed(cluster, cluster.node("node2")).items() if c != "mpi"}
    assert reads(cluster, cluster.node("node2")).versions == ()
    assert mpi.HOSTFILE not in reads(cluster, cluster.node("node2")).files


def test_without_mpi_picl_does_nothing_for_it(tmp_path: Path) -> None:
    cluster = spec(tmp_path, None)
    for node in cluster.nodes:
        assert "mpi" not in needed(cluster, node).values()
        assert plan(cluster, node.name, everyone()) == {}
        assert reads(cluster, node).versions == ()


@pytest.mark.parametrize(("node", "packages"), [
    ("node0", ["openmpi-bin", "libopenmpi-dev", "gcc"]),  # the primary compiles
    ("node1", ["openmpi-bin"]),
])
def test_runtime_everywhere_compiler_on_the_primary(cluster: Cluster, node: str,
                                                    packages: list[str]) -> None:
    assert [p for p, c in needed(cluster, cluster.node(node)).items() if c == "mpi"] == packages


def test_parameters_pin_both_transports_to_the_wired_subnet(cluster: Cluster) -> None:
    text = wanted(plan(cluster, "node1", everyone()), mpi.PARAMETERS)
    lines = text.splitlines()
    assert "btl_tcp_if_include = 10.1.10.0/24" in lines
    assert "oob_tcp_if_include = 10.1.10.0/24" in lines
    assert "btl_tcp_disable_family = 6" in lines  # no IPv6 (link-local confuses it)
    assert "btl = ^uct,openib,ofi" in lines  # Debian's own defaults are kept
    assert f"mpi {mpi.PRRTE_PARAMETERS}" not in plan(cluster, "node1", everyone())


def test_open_mpi_5_pins_its_launcher_in_prrtes_file(cluster: Cluster) -> None:
    changes = plan(cluster, "node1", everyone(version=TRIXIE))
    assert "oob_tcp_if_include = 10.1.10.0/24" in wanted(changes, mpi.PRRTE_PARAMETERS)
    assert "btl_tcp_if_include = 10.1.10.0/24" in wanted(changes, mpi.PARAMETERS)
    assert "oob_tcp" not in wanted(changes, mpi.PARAMETERS)


def test_files_as_wanted_are_no_change(cluster: Cluster) -> None:
    states = everyone()
    for path, change in plan(cluster, "node1", states).items():
        states["node1"].files[path.removeprefix("mpi ")] = \
            change.steps[0].arguments["src"].getvalue().encode()  # type: ignore[attr-defined]
    assert plan(cluster, "node1", states) == {}


def test_a_foreign_edit_is_an_update_with_a_diff(cluster: Cluster) -> None:
    states = everyone()
    states["node1"].files[mpi.PARAMETERS] = b"btl_tcp_if_include = wlan0\n"
    change = plan(cluster, "node1", states)[f"mpi {mpi.PARAMETERS}"]
    assert change.action == "update"  # type: ignore[attr-defined]
    assert "-btl_tcp_if_include = wlan0" in change.diff  # type: ignore[attr-defined]


def test_mixed_major_versions_are_refused_naming_who_has_which(cluster: Cluster) -> None:
    states = everyone()
    states["node2"] = node_state("node2", version=TRIXIE)
    for name in ("node0", "node1", "node2"):
        planned = plan_node(cluster, cluster.node(name), states[name],
                            ClusterFacts(observed=states))
        (blocked,) = [c for c in planned.blocked if c.resource == "mpi"]
        assert "4.x on node0 (4.1.4), node1 (4.1.4)" in blocked.blocked
        assert "5.x on node2 (5.0.7)" in blocked.blocked
        assert not [c for c in planned.changes if c.resource.startswith("mpi /")]


@pytest.mark.parametrize(("versions", "refused"), [
    ((BOOKWORM, "4.1.6-1", BOOKWORM), False),  # one major: one job can run
    ((BOOKWORM, None, BOOKWORM), False),  # no version known: apt says so when it installs
    ((BOOKWORM, BOOKWORM, "1:5.0.7-1"), True),  # an epoch does not hide the major
    ((TRIXIE, BOOKWORM, BOOKWORM), True),  # the primary launches: it counts too
])
def test_refusal_only_for_two_majors(cluster: Cluster, versions: tuple[str | None, ...],
                                     refused: bool) -> None:
    states = {n: node_state(n, version=v) for n, v in zip(("node0", "node1", "node2"), versions, strict=True)}
    assert (list(plan(cluster, "node1", states)) == ["mpi"]) is refused


def test_a_node_outside_mpi_does_not_count_for_versions(tmp_path: Path) -> None:
    cluster = spec(tmp_path, 'nodes = ["node1"]')
    states = everyone()
    states["node2"] = node_state("node2", version=TRIXIE)
    assert "mpi" not in plan(cluster, "node1", states)


@pytest.mark.parametrize(("version", "major", "upstream"), [
    ("4.1.4-3+b1", "4", "4.1.4"),
    ("5.0.7-1", "5", "5.0.7"),
    ("1:5.0.7-1", "5", "5.0.7"),
    ("4.1.4", "4", "4.1.4"),
])
def test_debian_versions(version: str, major: str, upstream: str) -> None:
    assert (mpi.major(version), mpi.upstream(version)) == (major, upstream)
