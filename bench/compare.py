"""Benchmark: picl, a hand-written pyinfra deploy and an Ansible playbook keeping one cluster.

    .venv/bin/python bench/compare.py [--nodes 3 10 30] [--runs 5] [--converge-runs 3]
                                      [--out bench/results/compare.json]

For each cluster size N, the reference cluster grown to N nodes (plus a managed /etc/motd, and
python3-apt among its packages: Ansible's apt module needs it and the lab has no network to
fetch it), kept three ways on the same lab nodes:

- picl: `picl --lab apply --yes`, `picl --lab plan --detailed-exitcode`;
- pyinfra: bench/pyinfra/deploy.py with `pyinfra -y`; its plan is the change detection before
  the prompt, answered by end-of-input (`--dry` skips change detection);
- ansible: bench/ansible/site.yml with `ansible-playbook`, its plan `--check --diff`. ansible-core
  comes from a venv of the bench's own, .venv-bench, made from bench/requirements.txt when needed.

Phases: `converge`, the first run on a fresh lab (`lab down`, `lab up`: nodes as built), and
`plan` and `apply`, no-ops on nodes picl converged (the deploys' file contents are read from
them). Runs interleave the tools, in a rotating order, so the machine's noise hits all alike.
Each run is checked (a converge changed something and failed nowhere, a no-op changed nothing)
or the bench stops with the tool's output. Each run starts with no shared SSH connection: picl's
and Ansible's ControlPersist masters are closed after every run, so a figure is one command on
its own, as a user runs it after a while and as the agent does.

Per run: wall clock; the tool's CPU (user + system of it and everything it started: getrusage
of reaped children, the bench adopting orphans so that SSH masters count); the nodes' CPU
(usage_usec of the lab's cgroup: every container's sshd, modules, apt, ...).

The JSON written to --out (after each cluster size, so a failure keeps what was measured):

    {"machine": {"cores", "cpu", "memory_gib", "kernel", "python", "date"},
     "versions": {"picl", "pyinfra", "ansible-core"},
     "command": the command line, "load": {"before", "after"} (1-minute load average),
     "other_labs": [labs already up on the machine at the start],
     "labs": [{"nodes": N, "idle_node_cpu": CPU s per s of the converged lab at rest}],
     "results": [{"nodes": N, "tool": "picl" | "pyinfra" | "ansible",
                  "phase": "converge" | "plan" | "apply",
                  "wall_s": [...], "tool_cpu_s": [...], "node_cpu_s": [...]}]}  # one per run

A Markdown summary (medians, spread, ratio to picl) goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from common import PICL, REPO, machine  # bench/common.py

from picl.lab import labs_on_host
from picl.lab.supervisor import CGROUP_TOP, cgroup_roots

DEPLOY = REPO / "bench" / "pyinfra" / "deploy.py"
PLAYBOOK = REPO / "bench" / "ansible" / "site.yml"
ANSIBLE_CFG = REPO / "bench" / "ansible" / "ansible.cfg"
BENCH_VENV = REPO / ".venv-bench"
REQUIREMENTS = REPO / "bench" / "requirements.txt"
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
TOOLS = ("picl", "pyinfra", "ansible")
MOTD = "arrakis: the spice must flow\n"
# In the bench's spec, so in the lab's image: Ansible's apt module needs it, the lab has no
# network to fetch it.
APT_MODULE_NEEDS = "python3-apt"
# What the deploys keep, read from a node picl converged: data key -> path.
FILES = {
    "sudoers": "/etc/sudoers.d/picl-federico",
    "authorized_keys": "/home/federico/.ssh/authorized_keys",
    "etc_hosts": "/etc/hosts",
    "chrony": "/etc/chrony/chrony.conf",
    "motd": "/etc/motd",
    "exports": "/etc/exports.d/picl.exports",
    "timezone": "/etc/timezone",
    "fstab": "/etc/fstab",
}
# Run on a node: those files and its default target, as JSON.
READ = """
import json, os, subprocess, sys
got = {k: open(p).read() if os.path.exists(p) else "" for k, p in json.loads(sys.argv[1]).items()}
got["target"] = subprocess.run(["systemctl", "get-default"], capture_output=True, text=True).stdout
print(json.dumps(got))
"""
# Boot is over on every node (degraded counts: the lab's kernel has no NFS server).
SETTLE = 'for a in "$@"; do ssh "$a" systemctl is-system-running --wait >/dev/null & done; wait'
PR_SET_CHILD_SUBREAPER = 36
ANSI = re.compile(r"\x1b\[[0-9;]*m")
RECAP = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def packages() -> list[str]:
    return [*tomllib.loads((REPO / "cluster.toml").read_text())["packages"]["all"],
            APT_MODULE_NEEDS]


def spec_text(nodes: int) -> str:
    """The reference cluster with `nodes` nodes, a managed file and python3-apt."""
    text = (REPO / "cluster.toml").read_text()
    head, _, _ = text.partition("[[nodes]]")
    _, _, tail = text.partition("[[users]]")
    lines = [head.rstrip(), ""]
    for i in range(nodes):
        lines += ["[[nodes]]", f'name = "node{i}"', f'address = "{address(i)}"']
        lines += ['target = "graphical"'] if i == 0 else []
        lines.append("")
    tail, found = re.subn(r"(?m)^(\[packages\]\nall = )\[.*\]$",
                          lambda m: m[1] + json.dumps(packages()), tail)
    if found != 1:
        raise SystemExit("cluster.toml: no `all = [...]` right under [packages]")
    lines += ["[[users]]" + tail.rstrip(), "", "[[files]]", 'path = "/etc/motd"',
              f"content = {json.dumps(MOTD)}", ""]
    return "\n".join(lines)


def address(i: int) -> str:
    return f"10.1.10.{100 + i}"


def bench_venv() -> Path:
    """The bin directory of the bench's own venv, made or brought up to its requirements."""
    stamp = BENCH_VENV / ".installed"
    if not stamp.exists() or stamp.stat().st_mtime < REQUIREMENTS.stat().st_mtime:
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run([str(BENCH_VENV / "bin" / "pip"), "install", "-q", "-r",
                        str(REQUIREMENTS)], check=True)
        stamp.touch()
    return BENCH_VENV / "bin"


def run(argv: list[str], env: dict[str, str], timeout: float | None = None) -> str:
    """stdout of a command that must succeed (setup, not measured)."""
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        sys.exit(f"{shlex.join(argv)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc.stdout


# -- the lab -------------------------------------------------------------------------------


@dataclass
class Lab:
    """The bench's cluster on `nodes` lab nodes: the environment its commands run with."""

    nodes: int
    work: Path
    env: dict[str, str] = field(default_factory=dict)
    control: list[Path] = field(default_factory=list)  # where shared SSH connections live

    def __post_init__(self) -> None:
        spec = self.work / f"cluster-{self.nodes}.toml"
        spec.write_text(spec_text(self.nodes))
        secrets = self.work / "secrets.toml"
        secrets.write_text('wifi_psk = "bench-not-a-secret"\nroot_password_hash = "$6$bench$x"\n')
        secrets.chmod(0o600)
        (self.work / "gh").mkdir(exist_ok=True)
        (self.work / "gh" / "flucifredi.keys").write_text("")  # the spec's GitHub user: no key
        ansible_control = self.work / "cp"
        self.env = dict(
            os.environ, PICL_SPEC=str(spec), PICL_SECRETS=str(secrets),
            PICL_LAB_NAME=f"cmp{self.nodes}", PICL_GITHUB_URL=(self.work / "gh").as_uri(),
            XDG_CACHE_HOME=str(self.work / "cache"), PYINFRA_PROGRESS="off",
            ANSIBLE_CONFIG=str(ANSIBLE_CFG), ANSIBLE_SSH_CONTROL_PATH_DIR=str(ansible_control),
        )
        self.control = [ansible_control]

    def fresh(self) -> None:
        """The lab as built: down, up, and boot over on every node."""
        self.down()
        run([*PICL, "lab", "up"], self.env)
        run([*PICL, "lab", "exec", "--", "sh", "-c", SETTLE, "settle",
             *(address(i) for i in range(self.nodes))], self.env, timeout=300)
        picl_control = run([*PICL, "lab", "exec", "--", "sh", "-c", "echo $PICL_SSH_CONTROL"],
                           self.env).strip()
        self.control = [self.control[0], *([Path(picl_control)] if picl_control else [])]

    def down(self) -> None:
        self.close_connections()
        subprocess.run([*PICL, "lab", "down"], env=self.env, capture_output=True)

    def node_cpu(self) -> float:
        """CPU seconds used so far by every process of the lab's nodes."""
        for root in cgroup_roots():
            stat = root / CGROUP_TOP / self.env["PICL_LAB_NAME"] / "cpu.stat"
            if stat.exists():
                usage = next(line for line in stat.read_text().splitlines()
                             if line.startswith("usage_usec "))
                return int(usage.split()[1]) / 1e6
        sys.exit("no cgroup2 cpu.stat for the lab's nodes")

    def close_connections(self) -> None:
        """Close shared SSH connections (ControlPersist masters): the next run starts cold."""
        for directory in self.control:
            for socket in directory.glob("*") if directory.is_dir() else ():
                subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "bench"],
                               capture_output=True, stdin=subprocess.DEVNULL)

    def read(self, i: int) -> dict[str, object]:
        """What picl converged node i to: the deploys' data for it."""
        remote = shlex.join(["python3", "-c", READ, json.dumps(FILES)])
        got = json.loads(run([*PICL, "lab", "ssh", f"node{i}", "--", remote], self.env))
        return {
            **{key: got[key] for key in FILES if key not in ("fstab", "timezone")},
            "fstab": [line for line in got["fstab"].splitlines()
                      if line.strip() and not line.lstrip().startswith("#")],
            "timezone": got["timezone"].strip(),
            "target": got["target"].strip().removesuffix(".target"),
            "packages": packages(),
        }


def inventories(lab: Lab) -> tuple[Path, Path]:
    """A pyinfra and an Ansible inventory of the lab's nodes, with what picl converged them to."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        data = list(pool.map(lab.read, range(lab.nodes)))
    hosts = [(f"node{i}", address(i), d) for i, d in enumerate(data)]
    pyinfra = lab.work / "inventory.py"
    # `picl lab exec` gives the lab's key and known_hosts in the environment: both tools use them.
    pyinfra.write_text(
        "import os\n"
        "_ssh = {'ssh_user': 'root', 'ssh_key': os.environ['PICL_SSH_KEY'],\n"
        "        'ssh_known_hosts_file': os.environ['PICL_KNOWN_HOSTS'],\n"
        "        'ssh_strict_host_key_checking': 'yes'}\n"
        f"nodes = [(name, {{**_ssh, 'ssh_hostname': address, **data}})\n"
        f"         for name, address, data in {hosts!r}]\n"
    )
    ansible = lab.work / "inventory.yml"
    ssh = {
        "ansible_user": "root",
        "ansible_ssh_private_key_file": "{{ lookup('env', 'PICL_SSH_KEY') }}",
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=yes "
                                   "-o UserKnownHostsFile={{ lookup('env', 'PICL_KNOWN_HOSTS') }}",
    }
    hosts_yml = {name: {"ansible_host": addr, **d} for name, addr, d in hosts}
    ansible.write_text(json.dumps({"all": {"vars": ssh, "hosts": hosts_yml}}, indent=1))  # YAML
    return pyinfra, ansible


# -- measuring -----------------------------------------------------------------------------


@dataclass
class Sample:
    wall: float
    tool_cpu: float
    node_cpu: float


def adopt_orphans(on: bool) -> None:
    """Be the subreaper of what we start: a daemonized SSH master is then reaped (and counted)
    by us."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def reap(timeout: float = 10.0) -> None:
    """Wait for adopted orphans to end (their CPU then counts among our children's)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)
    print("warning: adopted processes still running; their CPU is not counted", file=sys.stderr)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(lab: Lab, argv: list[str]) -> tuple[Sample, subprocess.CompletedProcess[str]]:
    lab.close_connections()
    cpu, nodes = children_cpu(), lab.node_cpu()
    adopt_orphans(True)
    try:
        started = time.monotonic()
        proc = subprocess.run(argv, env=lab.env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, cwd=tempfile.gettempdir())
        wall = time.monotonic() - started
        nodes = lab.node_cpu() - nodes
        lab.close_connections()
        reap()
    finally:
        adopt_orphans(False)
    return Sample(wall, children_cpu() - cpu, nodes), proc


# -- the tools: their commands, and what their output must say -----------------------------


def command(tool: str, phase: str, inventory: dict[str, Path], ansible_bin: Path) -> list[str]:
    exec_ = [*PICL, "lab", "exec", "--"]
    if tool == "picl":
        return [*PICL, "--lab", "plan", "--detailed-exitcode"] if phase == "plan" else \
            [*PICL, "--lab", "apply", "--yes"]
    if tool == "pyinfra":
        yes = [] if phase == "plan" else ["-y"]
        return [*exec_, PYINFRA, *yes, str(inventory["pyinfra"]), str(DEPLOY)]
    check = ["--check", "--diff"] if phase == "plan" else []
    return [*exec_, str(ansible_bin / "ansible-playbook"), "-i", str(inventory["ansible"]),
            *check, str(PLAYBOOK)]


def column(text: str, header: str, row: str, name: str) -> list[str]:
    """The cells under `name` in pyinfra's table headed `header`: its rows, or those whose
    first cell starts with `row`."""
    lines = ANSI.sub("", text).splitlines()
    top = next((i for i, line in enumerate(lines) if line.strip().startswith(header)), None)
    if top is None:
        return []
    start = lines[top].index(name)
    end = min((m.start() for m in re.finditer(r"\S+", lines[top]) if m.start() > start),
              default=None)
    cells = []
    for line in lines[top + 1:]:
        if not line.strip() or line.startswith("-->"):
            break
        if line.strip().startswith(row):
            cells.append(line[start:end].strip())
    return cells


def problem(tool: str, phase: str, nodes: int, proc: subprocess.CompletedProcess[str]) -> str:
    """Why the run does not show what it claims, or "" when it does."""
    out = proc.stdout + proc.stderr
    if tool == "picl":
        if proc.returncode != 0:
            return f"exit {proc.returncode}"
        if phase == "apply" and "No changes" not in out:
            return "a no-op apply changed something"
        if phase == "converge" and "changes," not in out:
            return "the first converge changed nothing"
        return ""
    if tool == "pyinfra":
        if phase == "plan":
            changes = column(out, "Operation", "", "Change")
            if "Detected changes displayed above" not in out or not changes:
                return "no change detection"
            return "" if set(changes) == {"-"} else "a no-op plan found changes"
        if proc.returncode != 0:
            return f"exit {proc.returncode}"
        success = column(out, "Operation", "Grand total", "Success")
        error = column(out, "Operation", "Grand total", "Error")
        if error != ["-"]:
            return "errors"
        if (success == ["-"]) != (phase == "apply"):
            return "a no-op apply changed something" if phase == "apply" else \
                "the first converge changed nothing"
        return ""
    recap = RECAP.findall(out)
    if proc.returncode != 0 or len(recap) != nodes:
        return f"exit {proc.returncode}, {len(recap)} of {nodes} nodes in the recap"
    if any(unreachable != "0" or failed != "0" for _, _, unreachable, failed in recap):
        return "failed or unreachable nodes"
    changed = {int(c) for _, c, _, _ in recap}
    if phase != "converge" and changed != {0}:
        return "a no-op changed something"
    if phase == "converge" and 0 in changed:
        return "the first converge changed nothing on a node"
    return ""


def order(run: int) -> list[str]:
    """The tools in a rotating order: none always runs first."""
    return [TOOLS[(run + i) % len(TOOLS)] for i in range(len(TOOLS))]


def bench(nodes: int, runs: int, converge_runs: int, work: Path, ansible_bin: Path,
          results: dict[str, object]) -> None:
    lab = Lab(nodes, work)
    samples: dict[tuple[str, str], list[Sample]] = {}

    def one(tool: str, phase: str, inventory: dict[str, Path]) -> None:
        sample, proc = measure(lab, command(tool, phase, inventory, ansible_bin))
        why = problem(tool, phase, nodes, proc)
        if why:
            sys.exit(f"{nodes} nodes, {tool} {phase}: {why}\n{shlex.join(proc.args)}\n"
                     f"{proc.stdout}{proc.stderr}")
        samples.setdefault((tool, phase), []).append(sample)
        print(f"{nodes} nodes, {tool} {phase}: {sample.wall:.2f} s, tool CPU "
              f"{sample.tool_cpu:.2f} s, nodes CPU {sample.node_cpu:.2f} s", file=sys.stderr,
              flush=True)

    try:
        lab.fresh()
        run([*PICL, "--lab", "apply", "--yes"], lab.env)
        pyinfra, ansible = inventories(lab)
        inventory = {"pyinfra": pyinfra, "ansible": ansible}
        idle = lab.node_cpu()
        time.sleep(5)
        results["labs"].append({"nodes": nodes,
                                "idle_node_cpu": round((lab.node_cpu() - idle) / 5, 4)})
        for i in range(runs):
            for tool in order(i):
                one(tool, "plan", inventory)
                one(tool, "apply", inventory)
        for i in range(converge_runs):
            for tool in order(i):
                lab.fresh()
                one(tool, "converge", inventory)
    finally:
        lab.down()
    for (tool, phase), values in sorted(samples.items(), key=lambda kv: (
            ("converge", "plan", "apply").index(kv[0][1]), TOOLS.index(kv[0][0]))):
        results["results"].append({
            "nodes": nodes, "tool": tool, "phase": phase,
            "wall_s": [round(s.wall, 3) for s in values],
            "tool_cpu_s": [round(s.tool_cpu, 3) for s in values],
            "node_cpu_s": [round(s.node_cpu, 3) for s in values],
        })


def summary(results: dict[str, object]) -> str:
    rows = results["results"]
    lines = [
        "| nodes | phase | tool | median s | min-max s | vs picl | tool CPU s | nodes CPU s |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        picl = next(p for p in rows if (p["nodes"], p["phase"], p["tool"]) ==
                    (r["nodes"], r["phase"], "picl"))
        median = statistics.median(r["wall_s"])
        lines.append(
            f"| {r['nodes']} | {r['phase']} | {r['tool']} | {median:.2f} | "
            f"{min(r['wall_s']):.2f}-{max(r['wall_s']):.2f} | "
            f"{median / statistics.median(picl['wall_s']):.1f}x | "
            f"{statistics.median(r['tool_cpu_s']):.2f} | "
            f"{statistics.median(r['node_cpu_s']):.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[3, 10, 30])
    parser.add_argument("--runs", type=int, default=5, help="runs of each no-op")
    parser.add_argument("--converge-runs", type=int, default=3,
                        help="first converges of each tool (a fresh lab each)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "compare.json")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the lab needs root")
    ansible_bin = bench_venv()
    ansible_version = run([str(ansible_bin / "python"), "-c",
                           "from importlib.metadata import version; "
                           "print(version('ansible-core'))"], dict(os.environ)).strip()
    results: dict[str, object] = {
        "machine": machine(),
        "versions": {"picl": version("picl"), "pyinfra": version("pyinfra"),
                     "ansible-core": ansible_version},
        "command": shlex.join(["bench/compare.py", *sys.argv[1:]]),
        "load": {"before": round(os.getloadavg()[0], 2)},
        "other_labs": labs_on_host(),
        "labs": [],
        "results": [],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="picl-bench-compare-") as tmp:
        for nodes in args.nodes:
            work = Path(tmp) / str(nodes)
            work.mkdir()
            bench(nodes, args.runs, args.converge_runs, work, ansible_bin, results)
            results["load"]["after"] = round(os.getloadavg()[0], 2)
            args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(summary(results))


if __name__ == "__main__":
    main()
