"""Health checks: what people check by hand on a cluster, read in one round trip per node.

Each node runs one shell script (`health_script`) that prints every reading in a section of its
own; `readings` parses the sections, `judge` turns them into OK/WARN/FAIL per check with
thresholds for a Raspberry Pi. Reading and judging are apart, so both are tested as data.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from picl.deploy import slurm
from picl.deploy.fstab import fstab_entries
from picl.deploy.mpi import computing
from picl.operate.run import cluster_user
from picl.spec import Cluster, Node
from picl.transport.connection import Connection
from picl.transport.remote import Reply, as_user, ask

CHECK_TIMEOUT = 30.0  # the script's own waits (pings, an automount) stay well under this
CHECKS = ("ssh", "primary", "clock", "temperature", "shares", "disk", "load", "mpi", "slurm",
          "munge")
MPI_TIMEOUT = 20.0  # seconds for a one-rank-per-node job; a launch that hangs is stopped then
MPI_JOB = " mpi job"  # its reply's key: no node is named with a space
SLURM_JOB = " slurm"  # sinfo and munge to every node, from the primary
SLURM_TIMEOUT = 20.0  # an ssh to a dead node gives up after 5s; a few nodes fit
# Node states (sinfo %T) in which a node runs jobs; drained ones are WARN, the rest FAIL.
SLURM_WORKING = ("idle", "allocated", "mixed", "completing", "planned")
SLURM_DRAINED = ("drained", "draining")

# A Pi's firmware throttles the CPU from 80°C (85°C on the hottest ones): warn well before.
TEMPERATURE_WARN = 70.0
TEMPERATURE_FAIL = 80.0
DISK_WARN = 80  # percent of the root filesystem used
DISK_FAIL = 95  # an SD card this full fails writes, and apt with it
# Five-minute load per core: above 2 tasks wait for a core; far above, they are usually stuck
# in uninterruptible waits (a dead NFS server), not busy.
LOAD_WARN = 2.0
LOAD_FAIL = 8.0
CLOCK_WARN = 0.1  # seconds off NTP time: logs and make across nodes disagree
CLOCK_FAIL = 1.0  # TLS, Kerberos and `make` over NFS start failing
# vcgencmd get_throttled: bits now (0-3) and since boot (16-19).
UNDER_VOLTAGE, CAPPED, THROTTLED, SOFT_LIMIT = 0x1, 0x2, 0x4, 0x8
UNDER_VOLTAGE_SEEN, THROTTLED_SEEN = 0x10000, 0x40000


class Level(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


_ORDER = {Level.OK: 0, Level.WARN: 1, Level.FAIL: 2}


def worst(levels: Iterable[Level]) -> Level:
    return max(levels, key=_ORDER.__getitem__, default=Level.OK)


@dataclass(frozen=True)
class Check:
    """One check on one node: its level, a short value for a table, and why."""

    name: str
    level: Level
    value: str
    detail: str = ""


@dataclass
class NodeHealth:
    node: str
    checks: list[Check]
    seconds: float = 0.0

    @property
    def level(self) -> Level:
        return worst(c.level for c in self.checks)

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)


@dataclass(frozen=True)
class Expected:
    """What the spec says a node should see: its primary, and the NFS mounts it should have."""

    primary: str
    primary_address: str
    is_primary: bool
    mounts: dict[str, str] = field(default_factory=dict)  # mount point -> source


def expected(cluster: Cluster, node: Node) -> Expected:
    primary = cluster.primary
    mounts = {e.where: e.what for e in fstab_entries(cluster, node) if e.type.startswith("nfs")}
    return Expected(primary.name, str(primary.address), node.name == primary.name, mounts)


def health_script(want: Expected) -> str:
    """The one script a node runs: every reading, each under an `@@ name` line."""
    name, address = shlex.quote(want.primary), shlex.quote(want.primary_address)
    lines = [
        "s() { printf '\\n@@ %s\\n' \"$1\"; }",
        f"s ping-address; ping -c1 -W2 -q {address} >/dev/null 2>&1; echo $?",
        f"s resolve; getent hosts {name}",
        f"s ping-name; ping -c1 -W2 -q {name} >/dev/null 2>&1; echo $?",
        "s chrony; systemctl show chrony -p LoadState -p ActiveState -p ConditionResult",
        "s chrony-condition; systemctl status chrony --no-pager 2>/dev/null"
        " | grep -o 'Condition[A-Za-z]*=[^ )]*' | head -n 1",
        "s tracking; systemctl -q is-active chrony && timeout 5 chronyc -n tracking 2>&1",
        "s timedatectl; timedatectl show 2>/dev/null",
        "s container; systemd-detect-virt -c 2>/dev/null",
        "s vcgencmd; if command -v vcgencmd >/dev/null; then"
        " vcgencmd measure_temp; vcgencmd get_throttled; fi",
        "s thermal; for z in /sys/class/thermal/thermal_zone*/temp; do"
        " [ -r \"$z\" ] && cat \"$z\"; done",
        "s nfs; if grep -qwE 'nfs4?' /proc/filesystems ||"
        " find \"/lib/modules/$(uname -r)\" -name 'nfs.ko*' 2>/dev/null | grep -q .;"
        " then echo yes; else echo no; fi",
    ]
    for where in want.mounts:
        path = shlex.quote(where)
        # Reading the mount point mounts an automount; a dead server cannot hold it long.
        lines.append(f"s {shlex.quote('mount ' + where)}; "
                     f"timeout -s KILL 5 stat {shlex.quote(where + '/.')} >/dev/null 2>&1; "
                     f"findmnt -rn -o FSTYPE,SOURCE --mountpoint {path}")
    lines += [
        "s disk; df -P / | tail -n 1",
        "s load; cat /proc/loadavg; nproc",
        "exit 0",
    ]
    return "\n".join(lines) + "\n"


def sections(text: str) -> dict[str, list[str]]:
    """The script's output split by its `@@ name` lines."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@@ "):
            current = found.setdefault(line[3:].strip(), [])
        elif current is not None and line.strip():
            current.append(line.strip())
    return found


@dataclass
class Readings:
    """What one node's script printed, parsed; None where a reading is missing."""

    primary_by_address: bool | None = None
    primary_resolves_to: list[str] = field(default_factory=list)
    primary_by_name: bool | None = None
    chrony: dict[str, str] = field(default_factory=dict)  # LoadState, ActiveState, ...
    chrony_condition: str | None = None  # the start condition that was not met
    tracking: dict[str, str] = field(default_factory=dict)  # chronyc tracking, by field
    timedatectl: dict[str, str] = field(default_factory=dict)
    container: str | None = None
    temperature: float | None = None  # °C
    throttled: int | None = None
    nfs: bool | None = None  # whether this kernel can mount NFS
    mounts: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # where: (type, src)
    disk_used: int | None = None  # percent
    load: tuple[float, float, float] | None = None
    cores: int | None = None


def _pairs(lines: list[str], separator: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (ln.partition(separator) for ln in lines) if _}


def _status(lines: list[str]) -> bool | None:
    return lines[0] == "0" if lines else None


def readings(text: str) -> Readings:
    """Parse the script's output; a reading that is missing or garbled stays None."""
    found = sections(text)
    r = Readings(
        primary_by_address=_status(found.get("ping-address", [])),
        primary_resolves_to=[ln.split()[0] for ln in found.get("resolve", [])],
        primary_by_name=_status(found.get("ping-name", [])),
        chrony=_pairs(found.get("chrony", []), "="),
        chrony_condition=next(iter(found.get("chrony-condition", [])), None),
        tracking=_pairs(found.get("tracking", []), ":"),
        timedatectl=_pairs(found.get("timedatectl", []), "="),
        container=next(iter(found.get("container", [])), None),
        nfs={"yes": True, "no": False}.get(next(iter(found.get("nfs", [])), "")),
    )
    for line in found.get("vcgencmd", []):
        if m := re.fullmatch(r"temp=([\d.]+)'C", line):
            r.temperature = float(m[1])
        elif m := re.fullmatch(r"throttled=(0x[0-9a-fA-F]+)", line):
            r.throttled = int(m[1], 16)
    zones = [int(z) / 1000 for z in found.get("thermal", []) if re.fullmatch(r"-?\d+", z)]
    if r.temperature is None and zones:
        r.temperature = max(zones)
    for name, lines in found.items():
        if name.startswith("mount "):
            pairs = [ln.split(maxsplit=1) for ln in lines]
            r.mounts[name[6:]] = [(p[0], _unescape(p[1])) for p in pairs if len(p) == 2]
    disk = found.get("disk", [])
    if disk and (m := re.search(r"\s(\d+)%\s", f" {disk[0]} ")):
        r.disk_used = int(m[1])
    load = found.get("load", [])
    if load and (m := re.match(r"([\d.]+) ([\d.]+) ([\d.]+)", load[0])):
        r.load = (float(m[1]), float(m[2]), float(m[3]))
    if len(load) > 1 and load[1].isdigit():
        r.cores = int(load[1])
    return r


def _unescape(value: str) -> str:
    """findmnt -r writes spaces and the like as \\xNN."""
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m[1], 16)), value)


# -- judging -----------------------------------------------------------------------------------


def judge_primary(r: Readings, want: Expected) -> Check:
    name, address = want.primary, want.primary_address
    if r.primary_by_address is None:
        return Check("primary", Level.FAIL, "?", "no reading")
    if not r.primary_by_address:
        return Check("primary", Level.FAIL, "no ping", f"{address} does not answer ping")
    if not r.primary_resolves_to:
        return Check("primary", Level.FAIL, "no name",
                     f"{name} does not resolve (/etc/hosts: `picl apply` writes it)")
    if not r.primary_by_name:
        return Check("primary", Level.FAIL, "no ping",
                     f"{name} ({r.primary_resolves_to[0]}) does not answer ping")
    if address not in r.primary_resolves_to and not want.is_primary:
        return Check("primary", Level.WARN, name,
                     f"{name} resolves to {r.primary_resolves_to[0]}, the spec says {address}")
    return Check("primary", Level.OK, name)


def _offset(text: str) -> float | None:
    """chronyc's `0.000012345 seconds slow of NTP time` as signed seconds (slow: negative)."""
    m = re.match(r"([\d.]+) seconds (fast|slow)", text)
    if not m:
        return None
    return float(m[1]) * (1 if m[2] == "fast" else -1)


def _seconds(value: float) -> str:
    return f"{value * 1000:+.1f}ms" if abs(value) < 1 else f"{value:+.1f}s"


def judge_clock(r: Readings) -> Check:
    chrony = r.chrony.get("ActiveState")
    if chrony == "active" and r.tracking:
        if r.tracking.get("Leap status") == "Not synchronised":
            return Check("clock", Level.FAIL, "unsynced", "chrony runs but is not synchronised")
        offset = _offset(r.tracking.get("System time", ""))
        if offset is None:
            return Check("clock", Level.WARN, "?", "cannot read chrony's offset")
        source = r.tracking.get("Reference ID", "").partition(" ")[2].strip("()") or "?"
        local = r.tracking.get("Reference ID", "").startswith("7F7F0101")
        detail = "its own clock (no upstream)" if local else f"synchronised to {source}"
        level = (Level.FAIL if abs(offset) >= CLOCK_FAIL else
                 Level.WARN if abs(offset) >= CLOCK_WARN else Level.OK)
        return Check("clock", level, _seconds(offset), f"{detail}, {_seconds(offset)} off")
    if r.chrony.get("ConditionResult") == "no":
        why = f"{r.chrony_condition} not met" if r.chrony_condition else "a condition not met"
        host = "; a container: its host keeps the clock" if r.container else ""
        return Check("clock", Level.WARN, "n/a", f"chrony skipped ({why}{host})")
    synced = r.timedatectl.get("NTPSynchronized")
    if synced == "yes":
        return Check("clock", Level.OK, "synced", "synchronised (timedatectl)")
    state = ("not installed" if r.chrony.get("LoadState") == "not-found"
             else chrony or "unknown")
    return Check("clock", Level.FAIL, "unsynced", f"not synchronised (chrony: {state})")


def judge_temperature(r: Readings) -> Check:
    if r.temperature is None:
        return Check("temperature", Level.WARN, "n/a",
                     "no sensor (neither vcgencmd nor /sys/class/thermal)")
    t = r.temperature
    value = f"{t:.1f}°C"
    found = [(Level.OK, "")]
    if t >= TEMPERATURE_FAIL:
        found.append((Level.FAIL, f"{value}: the CPU throttles from {TEMPERATURE_FAIL:.0f}°C"))
    elif t >= TEMPERATURE_WARN:
        found.append((Level.WARN, f"{value}: near throttling ({TEMPERATURE_FAIL:.0f}°C)"))
    flags = r.throttled or 0
    if flags & UNDER_VOLTAGE:
        found.append((Level.FAIL, "under-voltage now: the power supply is too weak"))
    elif flags & UNDER_VOLTAGE_SEEN:
        found.append((Level.WARN, "under-voltage since boot"))
    if flags & (THROTTLED | CAPPED | SOFT_LIMIT):
        found.append((Level.WARN, "the CPU is throttled now"))
    elif flags & THROTTLED_SEEN:
        found.append((Level.WARN, "throttled since boot"))
    return Check("temperature", worst(level for level, _ in found), value,
                 "; ".join(why for _, why in found if why))


def judge_shares(r: Readings, want: Expected) -> Check | None:
    if not want.mounts:
        return None
    found: list[tuple[Level, str]] = []
    for where, source in want.mounts.items():
        nfs = [(t, s) for t, s in r.mounts.get(where, []) if t.startswith("nfs")]
        if nfs:
            got = nfs[-1][1]
            if got.rstrip("/") == source.rstrip("/"):
                found.append((Level.OK, f"{where} mounted"))
            else:
                found.append((Level.WARN, f"{where} is mounted from {got}, the spec says {source}"))
        elif r.nfs is False and r.container:
            found.append((Level.WARN, f"{where} cannot be mounted here: "
                                      f"no NFS in this kernel ({r.container} container)"))
        elif r.nfs is False:
            found.append((Level.FAIL, f"{where} not mounted: no NFS in this kernel"))
        else:
            found.append((Level.FAIL, f"{where} not mounted ({source})"))
    mounted = sum(1 for level, _ in found if level is Level.OK)
    return Check("shares", worst(lv for lv, _ in found), f"{mounted}/{len(found)}",
                 "; ".join(why for lv, why in found if lv is not Level.OK))


def judge_disk(r: Readings) -> Check:
    if r.disk_used is None:
        return Check("disk", Level.WARN, "?", "cannot read the root filesystem's usage")
    used = r.disk_used
    level = Level.FAIL if used >= DISK_FAIL else Level.WARN if used >= DISK_WARN else Level.OK
    return Check("disk", level, f"{used}%", f"/ is {used}% full" if level is not Level.OK else "")


def judge_load(r: Readings) -> Check:
    if r.load is None or not r.cores:
        return Check("load", Level.WARN, "?", "cannot read the load")
    per_core = r.load[1] / r.cores
    level = (Level.FAIL if per_core >= LOAD_FAIL else
             Level.WARN if per_core >= LOAD_WARN else Level.OK)
    value = f"{r.load[1]:.2f}"
    detail = (f"5-minute load {r.load[1]:.2f} on {r.cores} cores ({per_core:.1f} per core)"
              if level is not Level.OK else "")
    return Check("load", level, value, detail)


def judge(r: Readings, want: Expected) -> list[Check]:
    """Every check but ssh's, from a node's readings."""
    checks = [judge_primary(r, want), judge_clock(r), judge_temperature(r),
              judge_shares(r, want), judge_disk(r), judge_load(r)]
    return [c for c in checks if c is not None]


def node_health(reply: Reply, want: Expected) -> NodeHealth:
    """A node's checks from its reply: unreachable is one FAIL, else ssh OK and the rest."""
    if reply.status is None:
        why = reply.error.removeprefix("ssh: ")
        return NodeHealth(reply.node, [Check("ssh", Level.FAIL, "down", why)], reply.seconds)
    if reply.status != 0:
        last = reply.stderr.strip().splitlines()[-1:] or [f"exit {reply.status}"]
        return NodeHealth(reply.node, [Check("ssh", Level.FAIL, "error",
                                             f"the checks did not run: {last[0]}")])
    ssh = Check("ssh", Level.OK, f"{reply.seconds:.1f}s")
    return NodeHealth(reply.node, [ssh, *judge(readings(reply.stdout), want)], reply.seconds)


def mpi_job(cluster: Cluster) -> str:
    """One rank on each computing node, each printing its host: what the MPI check runs."""
    return f"mpirun -np {len(computing(cluster))} --map-by node hostname"


def judge_mpi(reply: Reply, cluster: Cluster) -> dict[str, Check]:
    """The MPI check of each computing node: did a rank of the job run there, and end well?"""
    ran = set(reply.stdout.split())
    said = reply.output().strip().splitlines()
    why = reply.error or (said[-1] if said and not reply.ok else f"exit {reply.status}")
    if reply.ok:
        why = f"its ranks ran on {', '.join(sorted(ran)) or 'no node'}"
    found = {}
    for node in computing(cluster):
        if reply.ok and node.name in ran:
            found[node.name] = Check("mpi", Level.OK, "ran")
        else:
            where = f"mpirun on {cluster.cluster.primary}"
            found[node.name] = Check("mpi", Level.FAIL, "no rank",
                                     f"no rank ran here ({where}: {why})")
    return found


def slurm_job(cluster: Cluster) -> str:
    """What the Slurm checks run on the primary: the nodes as the controller sees them, then a
    credential made here decoded on every Slurm node (`munge -n | ssh NODE unmunge`)."""
    nodes = " ".join(shlex.quote(n.name) for n in cluster.nodes if slurm.takes_part(cluster, n))
    return "\n".join([
        "echo '@@ sinfo'; sinfo -N -h -o '%N|%T|%E' 2>&1; echo \"status $?\"",
        "echo '@@ munge'",
        f"for n in {nodes}; do",
        "  r=$(munge -n 2>&1 | ssh -o BatchMode=yes -o ConnectTimeout=5 \"$n\" unmunge 2>&1"
        " >/dev/null); s=$?",
        "  printf '%s %s %s\\n' \"$n\" \"$s\" \"$(printf %s \"$r\" | tail -n 1)\"",
        "done",
    ])


def judge_slurm(reply: Reply, cluster: Cluster) -> dict[str, list[Check]]:
    """Each Slurm node's checks: its state as the controller sees it (computing nodes) and
    whether a credential of the primary's munge decodes there."""
    found = sections(reply.stdout)
    said = reply.output().strip().splitlines()
    why = reply.error or (said[-1] if said else f"exit {reply.status}")
    where = cluster.cluster.primary
    states: dict[str, tuple[str, str]] = {}
    listed = found.get("sinfo", [])
    if listed[-1:] == ["status 0"]:
        for line in listed[:-1]:
            name, _, rest = line.partition("|")
            state, _, reason = rest.partition("|")
            states[name] = (state, "" if reason == "none" else reason)
    else:
        why = next((ln for ln in listed if not ln.startswith("status ")), why)
    decoded: dict[str, tuple[bool, str]] = {}
    for line in found.get("munge", []):
        name, status, *error = line.split(" ", 2)
        decoded[name] = (status == "0", error[0] if error else "")
    checks: dict[str, list[Check]] = {}
    for node in cluster.nodes:
        if not slurm.takes_part(cluster, node):
            continue
        mine = checks.setdefault(node.name, [])
        if node in slurm.computing(cluster):
            mine.append(_slurm_state(node.name, states, f"sinfo on {where}: {why}"))
        ok, error = decoded.get(node.name, (False, why))
        mine.append(Check("munge", Level.OK, "ok") if ok else Check(
            "munge", Level.FAIL, "fails", f"munge -n on {where} | unmunge here: {error or why}"))
    return checks


def _slurm_state(node: str, states: dict[str, tuple[str, str]], why: str) -> Check:
    if not states:
        return Check("slurm", Level.FAIL, "?", why)
    if node not in states:
        return Check("slurm", Level.FAIL, "missing", "the controller does not know this node")
    state, reason = states[node]
    because = f": {reason}" if reason else ""
    if state.endswith("*"):  # the controller has not heard from its slurmd
        return Check("slurm", Level.FAIL, state, f"not responding{because}")
    if state in SLURM_WORKING:
        return Check("slurm", Level.OK, state)
    if state in SLURM_DRAINED:
        return Check("slurm", Level.WARN, state, f"{state}{because}")
    return Check("slurm", Level.FAIL, state, f"{state}{because}")


def check(
    cluster: Cluster, connection: Connection, timeout: float | None = None
) -> Generator[NodeHealth, None, None]:
    """`picl check`: every node's health, as each answers (with [mpi] or [slurm]: once their
    jobs on the primary ended)."""
    wanted = {n.name: expected(cluster, n) for n in cluster.nodes}
    commands = {n.name: (str(n.address), health_script(wanted[n.name])) for n in cluster.nodes}
    user = cluster_user(cluster)
    name = user.name if user else None
    primary = str(cluster.primary.address)
    if cluster.mpi is not None:
        commands[MPI_JOB] = (primary, as_user(name, mpi_job(cluster), MPI_TIMEOUT))
    if cluster.slurm is not None:
        commands[SLURM_JOB] = (primary, as_user(name, slurm_job(cluster), SLURM_TIMEOUT))
    held: list[NodeHealth] = []
    more: dict[str, list[Check]] = {}
    waits = max(timeout or CHECK_TIMEOUT, MPI_TIMEOUT, SLURM_TIMEOUT)
    for reply in ask(commands, connection, connection.allowing(waits)):
        if reply.node == MPI_JOB:
            for node, found in judge_mpi(reply, cluster).items():
                more.setdefault(node, []).insert(0, found)
        elif reply.node == SLURM_JOB:
            for node, checks in judge_slurm(reply, cluster).items():
                more.setdefault(node, []).extend(checks)
        elif cluster.mpi is None and cluster.slurm is None:
            yield node_health(reply, wanted[reply.node])
        else:
            held.append(node_health(reply, wanted[reply.node]))
    for health in held:
        health.checks += more.get(health.node, [])
        yield health
