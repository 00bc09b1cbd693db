"""MPI: plain `mpirun` on the primary uses every computing node, over the wired network only.

Open MPI reads a default hostfile and system-wide MCA parameters without any flag: picl writes
both, whole (Debian ships them as conffiles, picl owns them with a header). Open MPI uses every
interface that is up; with a Wi-Fi uplink beside the wired network jobs hang, so its TCP
transports are pinned to the spec's subnet, IPv6 off. The launch is a tree of ssh sessions:
the cluster key and the pinned host keys (deploy.ssh) make it run without a prompt.
"""

from __future__ import annotations

from picl.deploy.changes import Change, text_diff
from picl.deploy.commands import put
from picl.deploy.view import ClusterFacts, NodeView
from picl.facts.node import Observed, Reads
from picl.spec import Cluster, Node

PACKAGE = "openmpi-bin"  # mpirun and the runtime; its version decides the parameters' form
# The compiler wrappers need Open MPI's headers and a C compiler (Pi OS has one; Debian's
# minimal images do not).
COMPILER = ("libopenmpi-dev", "gcc")
HOSTFILE = "/etc/openmpi/openmpi-default-hostfile"
PARAMETERS = "/etc/openmpi/openmpi-mca-params.conf"
# Open MPI 5 launches with PRRTE, which reads its own parameters (its out-of-band transport).
PRRTE_PARAMETERS = "/etc/prte-mca-params.conf"
FILES = (HOSTFILE, PARAMETERS, PRRTE_PARAMETERS)
# The CPUs this shell may run on (what `nproc` counts), read by the shell itself.
STATUS = "/proc/self/status"
HEADER = "# Managed by picl from cluster.toml ([mpi]): edit the spec, not this file.\n"
# What Debian's openmpi-mca-params.conf sets, kept so Open MPI behaves as packaged.
DEBIAN_DEFAULTS = """\
btl_base_warn_component_unused = 0
mtl = ^ofi
btl = ^uct,openib,ofi
pml = ^ucx
osc = ^ucx,pt2pt
"""


def computing(cluster: Cluster) -> list[Node]:
    """The nodes that run ranks."""
    return cluster.selected(cluster.mpi.nodes) if cluster.mpi else []


def takes_part(cluster: Cluster, node: Node) -> bool:
    """A computing node, or the primary (which launches)."""
    return cluster.mpi is not None and (
        node.name == cluster.cluster.primary or node in computing(cluster))


def reads(cluster: Cluster, node: Node, shared: ClusterFacts) -> Reads:
    """Where MPI runs: its files, the version of Open MPI, and the node's cores."""
    if not takes_part(cluster, node):
        return Reads()
    return Reads(files=FILES, versions=(PACKAGE,), kernel=(STATUS,))


def cores(observed: Observed) -> int | None:
    """The processing units the node lets a program use (`nproc`), None when not read."""
    for line in observed.kernel.get(STATUS, []):
        key, _, value = line.partition(":")
        if key == "Cpus_allowed_list" and value.strip():
            count = 0
            for part in value.strip().split(","):  # 0-3,6
                start, _, end = part.partition("-")
                count += int(end or start) - int(start) + 1
            return count
    return None


def needs(cluster: Cluster, node: Node) -> tuple[str, ...]:
    """The runtime where ranks run or start; the compiler wrappers on the primary."""
    if not takes_part(cluster, node):
        return ()
    return (PACKAGE, *COMPILER) if node.name == cluster.cluster.primary else (PACKAGE,)


def slots(cluster: Cluster, node: Node, cores: int | None) -> int | None:
    """Ranks on a computing node: the spec's number, else its cores (None: not known)."""
    assert cluster.mpi is not None
    return cluster.mpi.slots or cores


def hostfile(cluster: Cluster, cores: dict[str, int | None]) -> str:
    """The default hostfile: every computing node with its slots.

    A node whose cores could not be read (it did not answer) is listed without a count:
    Open MPI then counts its cores itself, when it starts there.
    """
    lines = [HEADER]
    for node in computing(cluster):
        count = slots(cluster, node, cores.get(node.name))
        lines.append(f"{node.name} slots={count}\n" if count else f"{node.name}\n")
    return "".join(lines)


def major(version: str) -> str:
    """Debian's `4.1.4-3+b1` (or `1:5.0.7-1`) -> `4`."""
    return version.partition(":")[2 if ":" in version else 0].split(".")[0]


def upstream(version: str) -> str:
    """Debian's `4.1.4-3+b1` -> `4.1.4`: how people name an Open MPI release."""
    return version.rpartition(":")[2].split("-")[0]


def parameters(cluster: Cluster, version: str | None) -> dict[str, str]:
    """Every parameters file for this Open MPI version: path -> content."""
    subnet = cluster.network.subnet
    pinned = (f"# The wired network only: Open MPI uses every interface that is up.\n"
              f"btl_tcp_if_include = {subnet}\n")
    if version is not None and major(version) not in ("", "1", "2", "3", "4"):
        # Open MPI 5: its own transports here, the launcher's (PRRTE) in a file of its own.
        return {
            PARAMETERS: HEADER + DEBIAN_DEFAULTS + pinned + "btl_tcp_disable_family = 6\n",
            PRRTE_PARAMETERS: HEADER + f"oob_tcp_if_include = {subnet}\n"
                              "oob_tcp_disable_family = IPv6\n",
        }
    return {PARAMETERS: HEADER + DEBIAN_DEFAULTS + pinned + f"oob_tcp_if_include = {subnet}\n"
            "btl_tcp_disable_family = 6\noob_tcp_disable_ipv6_family = 1\n"}


def mixed(view: NodeView) -> str:
    """Why the cluster cannot run one job, when its MPI nodes would run different majors."""
    found: dict[str, list[str]] = {}
    for node in view.cluster.nodes:
        observed = view.shared.observed.get(node.name)
        version = observed.versions.get(PACKAGE) if observed else None
        if version and takes_part(view.cluster, node):
            found.setdefault(major(version), []).append(f"{node.name} ({upstream(version)})")
    if len(found) < 2:
        return ""
    each = "; ".join(f"{m}.x on {', '.join(nodes)}" for m, nodes in sorted(found.items()))
    return (f"mpi.nodes: these nodes would mix Open MPI major versions ({each}): "
            "one job needs one version; give them one release of the OS")


def changes(view: NodeView) -> list[Change]:
    if not takes_part(view.cluster, view.node):
        return []
    why = mixed(view)
    if why:
        return [Change("mpi", "update", blocked=why)]
    counts = {name: cores(o) for name, o in view.shared.observed.items()}
    wanted = {HOSTFILE: hostfile(view.cluster, counts),
              **parameters(view.cluster, view.observed.versions.get(PACKAGE))}
    found = []
    for path, text in wanted.items():
        current = view.observed.file(path)
        if current != text:
            found.append(Change(f"mpi {path}", "create" if current is None else "update",
                                diff=text_diff(path, current, text), steps=(put(path, text),)))
    return found
