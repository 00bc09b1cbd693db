"""Slurm: munge with the cluster's one key, slurm.conf from the spec and the nodes' facts.

The same slurm.conf is written to every Slurm node (not served configless by the controller):
picl already reads and converges every node's files, so a node's copy is compared on every
plan, and a slurmd starts after a power cut whether the controller is up yet or not. Configless
mode cannot creep in: picl owns /etc/default/slurmd (no `--conf-server`), and slurm.conf never
enables it. Process tracking and tasks use no cgroup (proctrack/linuxproc, task/none): slurmd
then runs in a container, and on a Pi whose kernel lacks `cgroup_enable=memory`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import secrets
from io import BytesIO
from pathlib import Path

from picl.deploy.changes import Attribute, Change, Step, text_diff
from picl.deploy.commands import command, put, sh, write_file
from picl.deploy.view import ClusterFacts, NodeView
from picl.facts.node import Observed, Reads
from picl.spec import Cluster, Node, SecretRef
from picl.spec.secrets import ensure

MUNGE = "munge"
CONTROLLER = "slurmctld"
DAEMON = "slurmd"
CLIENT = "slurm-client"  # sinfo, srun, sbatch, scontrol
SLURM_CONF = "/etc/slurm/slurm.conf"
CGROUP_CONF = "/etc/slurm/cgroup.conf"
# slurmd's options: `--conf-server` there would make it fetch its configuration (configless).
SLURMD_DEFAULTS = "/etc/default/slurmd"
MUNGE_KEY = "/etc/munge/munge.key"
MUNGE_SECRET = "munge_key"  # in secrets.toml: the key's bytes, base64
KEY_BYTES = 1024  # what `mungekey` makes
KEY_MINIMUM = 32  # munged refuses a shorter key
HEADER = "# Managed by picl from cluster.toml ([slurm]): edit the spec, not this file.\n"
# A node silent this long is down: on one switch, a minute of silence is a dead board.
SLURMD_TIMEOUT = 60
# Slurm releases in order: a slurmd may be at most two older than its slurmctld, never newer.
RELEASES = ("19.05", "20.02", "20.11", "21.08", "22.05", "23.02", "23.11", "24.05", "24.11",
            "25.05", "25.11")
SUPPORTED_BEHIND = 2
CGROUP_DISABLED_FROM = "24.05"  # the first release whose cgroup.conf takes CgroupPlugin=disabled
FILES = (SLURM_CONF, CGROUP_CONF, SLURMD_DEFAULTS)
UNITS = (MUNGE, CONTROLLER, DAEMON)
# What `slurmd -C` reports, read before slurmd is installed: its RealMemory is MemTotal in MiB,
# its sockets and cores those the kernel lists (lscpu: one line per CPU).
MEMINFO = "/proc/meminfo"
TOPOLOGY = ("lscpu", "lscpu -p=SOCKET,CORE")


def controller(cluster: Cluster) -> Node:
    """The node that runs slurmctld."""
    assert cluster.slurm is not None
    return cluster.node(cluster.slurm.controller or cluster.cluster.primary)


def computing(cluster: Cluster) -> list[Node]:
    """The nodes that run slurmd, in spec order."""
    return cluster.selected(cluster.slurm.nodes) if cluster.slurm else []


def takes_part(cluster: Cluster, node: Node) -> bool:
    """The controller, a computing node, or the primary (where people submit jobs)."""
    return cluster.slurm is not None and (
        node.name in (controller(cluster).name, cluster.cluster.primary)
        or node in computing(cluster))


def roles(cluster: Cluster, node: Node) -> tuple[str, ...]:
    """The Slurm packages of the node: the controller's, slurmd, the client tools."""
    if not takes_part(cluster, node):
        return ()
    found = []
    if node.name == controller(cluster).name:
        found.append(CONTROLLER)
    if node in computing(cluster):
        found.append(DAEMON)
    if node.name == cluster.cluster.primary:
        found.append(CLIENT)
    return tuple(found)


def reads(cluster: Cluster, node: Node, shared: ClusterFacts) -> Reads:
    """On a Slurm node: its files, the munge key by digest, the daemons, the versions of its
    roles' packages; where slurmd runs, the node's processors and memory."""
    if not takes_part(cluster, node):
        return Reads()
    found = Reads(files=FILES, secret_files=(MUNGE_KEY,), units=UNITS,
                  versions=roles(cluster, node))
    if node in computing(cluster):
        found |= Reads(kernel=(MEMINFO,), commands=(TOPOLOGY,))
    return found


@dataclasses.dataclass(frozen=True)
class Hardware:
    """A node's processors and memory, in `slurmd -C`'s words."""

    cpus: int
    sockets: int
    cores_per_socket: int
    threads_per_core: int
    memory: int  # MiB (RealMemory)

    @classmethod
    def parse(cls, meminfo: list[str], topology: list[str]) -> Hardware | None:
        """From /proc/meminfo's lines and lscpu's `SOCKET,CORE` lines (one per CPU, comments
        first); None when either was not read."""
        memory = [line.split()[1] for line in meminfo
                  if line.startswith("MemTotal:") and len(line.split()) > 1]
        cpus = [tuple(line.split(",")) for line in topology
                if line.count(",") == 1 and not line.startswith("#")]
        if not memory or not memory[0].isdigit() or not cpus:
            return None
        sockets = len({socket for socket, _ in cpus})
        cores = len(set(cpus))
        return cls(len(cpus), sockets, max(1, cores // sockets), max(1, len(cpus) // cores),
                   int(memory[0]) // 1024)


def hardware(observed: Observed) -> Hardware | None:
    """What `reads` found of the node's processors and memory (None: not read)."""
    return Hardware.parse(observed.kernel.get(MEMINFO, []),
                          observed.outputs.get(TOPOLOGY[0], []))


def needs(cluster: Cluster, node: Node) -> tuple[str, ...]:
    """munge on every Slurm node, and the packages of its roles."""
    return (MUNGE, *roles(cluster, node)) if takes_part(cluster, node) else ()


def release(version: str) -> str:
    """Debian's `22.05.8-4+deb12u3` (or `1:24.11.5-1`) -> `22.05`."""
    return ".".join(version.rpartition(":")[2].split(".")[:2])


def version_mix(cluster: Cluster, versions: dict[str, dict[str, str | None]]) -> str:
    """Why the Slurm nodes cannot work together ('' when they can): a slurmd or client tools
    newer than slurmctld, or more than two releases older. `versions`: node -> package ->
    Debian version (installed, else apt's candidate), as each node's read found them."""
    head = controller(cluster)
    ours = versions.get(head.name, {}).get(CONTROLLER)
    if not ours or release(ours) not in RELEASES:
        return ""
    at = RELEASES.index(release(ours))
    wrong = []
    for node in cluster.nodes:
        for package in roles(cluster, node):
            theirs = versions.get(node.name, {}).get(package)
            if package == CONTROLLER or not theirs or release(theirs) not in RELEASES:
                continue
            behind = at - RELEASES.index(release(theirs))
            if behind < 0 or behind > SUPPORTED_BEHIND:
                wrong.append(f"{package} {release(theirs)} on {node.name}")
    if not wrong:
        return ""
    return (f"slurm.nodes: slurmctld {release(ours)} on {head.name} cannot work with "
            f"{', '.join(wrong)}: Slurm supports daemons and tools up to {SUPPORTED_BEHIND} "
            "releases older than the controller, never newer; give the nodes one release of "
            "the OS")


def duration(seconds: int) -> str:
    """Seconds as Slurm writes a time limit: days-hours:minutes:seconds."""
    days, rest = divmod(seconds, 86400)
    return f"{days}-{rest // 3600:02}:{rest % 3600 // 60:02}:{rest % 60:02}"


def node_line(node: Node, hardware: Hardware | None, before: str = "") -> str:
    """A computing node's NodeName line: its CPUs and memory as slurmd -C reports them.

    The spec's slots go on the partition (`partition_line`), not here: Slurm 22.05 drains a
    node whose CPUs match none of its sockets, cores or threads. A node not read (it did not
    answer) keeps its line from `before` (the controller's current slurm.conf), or gets one CPU:
    ReturnToService brings it in when it answers, and the next apply writes what it has.
    """
    words = [f"NodeName={node.name}", f"NodeAddr={node.address}"]
    if hardware is None:
        kept = [ln for ln in before.splitlines() if ln.startswith(f"{words[0]} {words[1]} ")]
        if kept:
            return kept[0] + "\n"
        return " ".join([*words, "CPUs=1"]) + "\n"
    return " ".join([*words, f"CPUs={hardware.cpus}", f"Sockets={hardware.sockets}",
                     f"CoresPerSocket={hardware.cores_per_socket}",
                     f"ThreadsPerCore={hardware.threads_per_core}",
                     f"RealMemory={hardware.memory}"]) + "\n"


def partition_line(cluster: Cluster) -> str:
    """The one partition: every computing node, the time limit, and the spec's slots as the
    CPUs of each node its jobs may use (MaxCPUsPerNode), which leaves the nodes' lines true."""
    slurm = cluster.slurm
    assert slurm is not None
    limit = duration(slurm.max_time_seconds) if slurm.max_time_seconds else "UNLIMITED"
    slots = [f"MaxCPUsPerNode={slurm.slots}"] if slurm.slots is not None else []
    return " ".join([f"PartitionName={slurm.partition}",
                     f"Nodes={','.join(n.name for n in computing(cluster))}", "Default=YES",
                     f"MaxTime={limit}", *slots, "State=UP"]) + "\n"


def slots_beyond(cluster: Cluster, hardware: dict[str, Hardware | None]) -> str:
    """Why the spec's slots cannot be given ('' when they can): more than a computing node's
    CPUs. `hardware`: what each node read (absent or None: not read)."""
    slots = cluster.slurm.slots if cluster.slurm else None
    short = [f"{n.name} ({found.cpus})" for n in computing(cluster)
             if slots is not None and (found := hardware.get(n.name)) and found.cpus < slots]
    if not short:
        return ""
    return (f"slurm.slots: {slots} is more than the CPUs of {', '.join(short)}, as slurmd -C "
            "reports them: Slurm gives a node at most its CPUs (it drains a node said to have "
            "more); lower slots or leave it out")


def slurm_conf(cluster: Cluster, hardware: dict[str, Hardware | None], before: str = "") -> str:
    """slurm.conf, the same on every node: the cluster's settings, its nodes, its partition.

    `hardware`: what each node read (absent: not read); `before`: the controller's current file.
    """
    head = controller(cluster)
    return "".join([
        HEADER,
        f"ClusterName={cluster.cluster.name}\n",
        f"SlurmctldHost={head.name}({head.address})\n",
        "SlurmUser=slurm\n",  # Debian's packages make it and give it the state directories
        "AuthType=auth/munge\n",
        "StateSaveLocation=/var/lib/slurm/slurmctld\n",
        "SlurmdSpoolDir=/var/lib/slurm/slurmd\n",
        "# No cgroup: slurmd runs in containers, and on a Pi without cgroup_enable=memory.\n",
        "ProctrackType=proctrack/linuxproc\n",
        "TaskPlugin=task/none\n",
        "JobAcctGatherType=jobacct_gather/none\n",
        "SelectType=select/cons_tres\n",
        "SelectTypeParameters=CR_Core\n",
        "MpiDefault=none\n",
        "# A node that was down comes back by itself once its slurmd registers.\n",
        "ReturnToService=2\n",
        f"SlurmdTimeout={SLURMD_TIMEOUT}\n",
        *(node_line(node, hardware.get(node.name), before) for node in computing(cluster)),
        partition_line(cluster),
    ])


def cgroup_conf(version: str | None) -> str | None:
    """cgroup.conf where Slurm reads it without a cgroup plugin (24.05 on): cgroups off."""
    if version is None or release(version) not in RELEASES:
        return None
    if RELEASES.index(release(version)) < RELEASES.index(CGROUP_DISABLED_FROM):
        return None
    return HEADER + "CgroupPlugin=disabled\n"


SLURMD_OPTIONS = HEADER + (
    "# The node's own slurm.conf, the same on every node: no --conf-server (configless).\n"
    'SLURMD_OPTIONS=""\n')


# -- the munge key --------------------------------------------------------------------------


def munge_key(cluster: Cluster) -> bytes | None:
    """The cluster's munge key from the secrets file (None: not generated yet).

    ValueError, naming the secret but never its value, when it is no base64 key of 32 bytes.
    """
    value = cluster.secret(SecretRef(secret=MUNGE_SECRET))
    if value is None:
        return None
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"secret {MUNGE_SECRET!r} is not base64 (the value is not shown)") \
            from None
    if len(key) < KEY_MINIMUM:
        raise ValueError(f"secret {MUNGE_SECRET!r} holds {len(key)} bytes: munge needs "
                         f"{KEY_MINIMUM} at least (the value is not shown)")
    return key


def missing(cluster: Cluster) -> bool:
    """[slurm] without its munge key in the secrets file."""
    return cluster.slurm is not None and \
        cluster.secret(SecretRef(secret=MUNGE_SECRET)) is None


def generate_missing(cluster: Cluster, secrets_file: Path) -> list[str]:
    """Generate the munge key into the secrets file if it lacks one (apply, `picl secrets
    generate`; never a plan), as deploy.keys does the cluster keys. Returns what was done."""
    if not missing(cluster):
        return []
    value, added = ensure(secrets_file, MUNGE_SECRET,
                          lambda: base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode())
    cluster.stored(MUNGE_SECRET, value)
    return [f"generated the munge key, kept in {secrets_file} as {MUNGE_SECRET}"] if added else []


def _munge_key(view: NodeView) -> list[Change]:
    try:
        key = munge_key(view.cluster)
    except ValueError as exc:
        return [Change("slurm munge key", "update", blocked=str(exc))]
    exists = view.observed.digests.get(MUNGE_KEY) is not None
    action = "update" if exists else "create"
    if key is None:
        # A plan writes no secret: apply generates it before it plans.
        return [Change("slurm munge key", action,
                       (Attribute("key", None, "generated at apply"),))]
    stat = view.observed.stats.get(MUNGE_KEY)
    same = view.observed.digests.get(MUNGE_KEY) == hashlib.sha256(key).hexdigest()
    owned = stat is not None and (stat.owner, stat.group, stat.mode) == (MUNGE, MUNGE, "0400")
    if same and owned:
        return []
    shown = [Attribute("content", None, None, sensitive=True)] if not same else []
    if stat is not None and not owned:
        shown.append(Attribute("owner, mode", f"{stat.owner}:{stat.group} {stat.mode}",
                               f"{MUNGE}:{MUNGE} 0400"))
    return [Change("slurm munge key", action, tuple(shown), sensitive=True, steps=(
        Step(write_file, {"src": BytesIO(key), "dest": MUNGE_KEY, "user": MUNGE,
                          "group": MUNGE, "mode": "0400", "check": ""}),
        # munged reads its key when it starts.
        sh("systemctl restart munge"),
    ))]


# -- the whole concern ----------------------------------------------------------------------


def _files(view: NodeView, found: dict[str, Hardware | None]) -> dict[str, str | None]:
    """Every file picl owns here -> its content (None: must not exist); `found`: each node's
    hardware, as read."""
    cluster, node = view.cluster, view.node
    head = view.shared.observed.get(controller(cluster).name)
    before = (head.file(SLURM_CONF) if head else None) or ""
    versions = view.observed.versions
    version = next((versions.get(p) for p in roles(cluster, node) if versions.get(p)), None)
    wanted: dict[str, str | None] = {SLURM_CONF: slurm_conf(cluster, found, before),
                                     CGROUP_CONF: cgroup_conf(version)}
    if DAEMON in roles(cluster, node):
        wanted[SLURMD_DEFAULTS] = SLURMD_OPTIONS
    return wanted


def partition_only(before: str | None, after: str) -> bool:
    """Whether slurm.conf changes only in its partition (time limit, slots, name)."""
    def rest(text: str) -> list[str]:
        return [ln for ln in text.splitlines() if not ln.startswith("PartitionName=")]

    return before is not None and rest(before) == rest(after)


def _restart(daemons: list[str], reread: bool = False, start_munge: bool = False) -> Step:
    """The daemons enabled for the next boot, and made to read their configuration.

    slurmctld restarts: Slurm 22.05's reconfigure (SIGHUP) kept a partition's old MaxTime and
    MaxCPUsPerNode on the lab; it reads its jobs back from its state directory. slurmd, which
    holds no partition, only re-reads its file when nothing else changed (`reread`), so the
    job steps it watches never see it go; else it restarts (Debian's unit leaves them running).
    `start_munge`: munged is down (an unchanged key restarts nothing), and no daemon works
    without it.
    """
    daemon = [command("systemctl", "reload-or-restart" if reread else "restart", DAEMON)] \
        if DAEMON in daemons else []
    return sh(command("systemctl", "enable", "--quiet", MUNGE, *daemons),
              *([command("systemctl", "start", MUNGE)] if start_munge else []),
              *([command("systemctl", "restart", CONTROLLER)] if CONTROLLER in daemons else []),
              *daemon)


def changes(view: NodeView) -> list[Change]:
    """The munge key, Slurm's files and its daemons, running, on a Slurm node."""
    cluster, node = view.cluster, view.node
    if not takes_part(cluster, node):
        return []
    shared = view.shared.observed
    found = {name: hardware(o) for name, o in shared.items()}
    why = version_mix(cluster, {name: o.versions for name, o in shared.items()}) or \
        slots_beyond(cluster, found)
    if why:
        return [Change("slurm", "update", blocked=why)]
    files: list[Change] = []
    reread = True
    for path, text in _files(view, found).items():
        current = view.observed.file(path)
        if current == text or (text is None and not (current or "").startswith(HEADER)):
            continue  # a cgroup.conf of someone else's is left alone
        reread = reread and path == SLURM_CONF and text is not None and \
            partition_only(current, text)
        if text is None:
            files.append(Change(f"slurm {path}", "remove", diff=text_diff(path, current, None),
                                steps=(sh(command("rm", "-f", path)),)))
        else:
            files.append(Change(f"slurm {path}", "create" if current is None else "update",
                                diff=text_diff(path, current, text), steps=(put(path, text),)))
    daemons = [d for d in (CONTROLLER, DAEMON) if d in roles(cluster, node)]
    down = [u for u in (MUNGE, *daemons)
            if view.observed.units.get(u, ("absent", "absent")) != ("enabled", "active")]
    munge_down = MUNGE in down
    if files:  # once the files are in place, the daemons read them
        restart = _restart(daemons, reread, munge_down)
        files[-1] = dataclasses.replace(files[-1], steps=(*files[-1].steps, restart))
    elif down:
        files.append(Change("slurm daemons", "update", (Attribute("running", None, down),),
                            steps=(_restart(daemons, start_munge=munge_down),)))
    return _munge_key(view) + files
