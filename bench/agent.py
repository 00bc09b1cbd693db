"""Benchmark: the agent's push-to-converged latency, and what its cycles cost the primary.

    .venv/bin/python bench/agent.py [--nodes 10] [--runs 10] [--out bench/results/agent.json]
    .venv/bin/python bench/agent.py --nodes 3 --runs 5 --arch node0=arm64 --idle 60 \
        --lab agentbench-arm64 --out bench/results/agent-arm64.json  # emulated by qemu-user

A lab of bench/compare.py's cluster grown to --nodes nodes (no GitHub keys: the lab has no
uplink), its interval 90 s, converged by `picl --lab apply`, the agent installed with `picl
--lab agent install`, a first push converged. Then each run commits a change to a user
(federico's shell, on every node), pushes it to the primary and, from inside the lab, waits
on the primary until the agent's status says that revision is applied: the time from the push
returning to that. Then the agent is left alone for --idle seconds (INTERVAL_WINDOW): its
interval cycles, no-op plans of an unchanged revision, 90 s apart: longer than a shared SSH
connection outlives its last use unless held open.

All along, a sampler on the primary reads every 0.2 s the agent's own CPU time (user + system
of its process: picl's own cost, threads included) and its service's (the cgroup: the agent,
its ssh and git). Each cycle of the agent's history is given the CPU used between its start
and its end: CPU time, not wall time, is the figure that holds on a loaded machine. Idle: its
service's CPU in that window outside cycles. Last, the memory of the agent and its service.

`--arch NODE=arm64` makes that node an arm64 board (`picl lab up --arch`); the status is then
polled every 0.2 s rather than 0.02 s and the agent's CPU read every second (each poll starts
emulated processes on the primary, which would take the cores the agent's cycle needs). Writes:

    {"machine": {...}, "load": [1-minute load average before, after], "arch": {NODE: ARCH},
     "nodes": N, "push_to_converged_s": [...], "cycle_s": [...],
     "cpu": {"push": [the agent's CPU s per push cycle], "push_all": [its service's],
             "interval": [per interval cycle], "interval_all": [...]},
     "idle": {"seconds", "cpu_s", "rss_kib" (the agent's resident memory),
              "pss_all_kib" (every process of the service, shared pages counted once)}}
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import PICL, REPO, machine  # bench/common.py
from compare import spec_text  # bench/compare.py

PRIMARY = "10.1.10.100"  # compare.py's node0
URL = f"ssh://root@{PRIMARY}/srv/picl/cluster.git"
LAB = "agentbench"
# Inside the lab: push, then wait on the primary for the status to name the revision applied.
MEASURE = r"""
set -e
cd "$1"
sha=$(git rev-parse HEAD)
git push -q {url} HEAD:main
t1=$(date +%s.%N)
ssh {primary} "until grep -q '\"applied\": \"$sha\"' /var/lib/picl/status.json; \
  do sleep {poll}; done"
t2=$(date +%s.%N)
echo "$t1 $t2"
"""
INTERVAL = "90s"  # longer than a shared SSH connection outlives its last use (60 s)
INTERVAL_WINDOW = 300  # seconds left alone: three interval cycles or so
# On the primary, until killed: time, the agent's CPU (clock ticks), its service's (us).
SAMPLER = r"""
pid=$(systemctl show -p MainPID --value picl-agent)
base=/sys/fs/cgroup; [ -d $base/unified ] && base=$base/unified
cg=$base$(awk -F: '$1 == "0" {print $3}' /proc/$pid/cgroup)
tick=$(getconf CLK_TCK)
while :; do
  echo "$(date +%s.%N) $(awk -v t=$tick '{print ($14 + $15) / t}' /proc/$pid/stat)" \
    "$(awk '/^usage_usec/ {print $2 / 1e6}' $cg/cpu.stat)"
  sleep 0.2
done > /tmp/picl-bench-samples
"""
# On the primary: the memory of the agent (resident) and of every process of its service
# (its cgroup: the agent, its SSH sessions and their shared connections, git; shared pages
# counted once).
MEMORY = r"""
pid=$(systemctl show -p MainPID --value picl-agent)
base=/sys/fs/cgroup; [ -d $base/unified ] && base=$base/unified  # a hybrid hierarchy's v2
cg=$base$(awk -F: '$1 == "0" {print $3}' /proc/$pid/cgroup)
[ -f $cg/cpu.stat ] || { echo "no cgroup v2 cpu.stat for picl-agent: $cg" >&2; exit 1; }
echo "$(awk '/VmRSS/ {print $2}' /proc/$pid/status) \
$(for p in $(cat $cg/cgroup.procs); do awk '/^Pss:/ {print $2}' /proc/$p/smaps_rollup; done \
  | awk '{s+=$1} END {print s}')"
"""


def picl(*args: str, env: dict[str, str]) -> str:
    proc = subprocess.run([*PICL, *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"picl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.org",
                           *args], cwd=repo, check=True, capture_output=True,
                          text=True).stdout.strip()


def cycle_cpu(samples: list[tuple[float, float, float]], started: float,
              finished: float) -> tuple[float, float]:
    """The agent's and its service's CPU from the last sample before `started` to the first
    after `finished`."""
    before = [s for s in samples if s[0] <= started]
    after = [s for s in samples if s[0] >= finished]
    if not before or not after:
        raise SystemExit(f"no samples around the cycle {started}-{finished}")
    return round(after[0][1] - before[-1][1], 3), round(after[0][2] - before[-1][2], 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--lab", default=LAB, help="the lab's name")
    parser.add_argument("--arch", action="append", default=[], metavar="NODE=ARCH",
                        help="a node's architecture, as `picl lab up --arch`")
    parser.add_argument("--idle", type=int, default=INTERVAL_WINDOW,
                        help="seconds the agent is left alone after the pushes")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "agent.json")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="picl-bench-agent-") as tmp:
        root = Path(tmp)
        spec = root / "cluster.toml"
        spec.write_text("\n".join(line for line in spec_text(options.nodes).splitlines()
                                  if not line.startswith("github = ")).replace(
            'interval = "5m"', f'interval = "{INTERVAL}"') + "\n")
        secrets = root / "secrets.toml"
        hashed = subprocess.run(["openssl", "passwd", "-6", "bench"], capture_output=True,
                                text=True, check=True).stdout.strip()
        secrets.write_text(f'wifi_psk = "not-a-real-psk"\nroot_password_hash = "{hashed}"\n')
        secrets.chmod(0o600)
        env = {**os.environ, "PICL_SPEC": str(spec), "PICL_SECRETS": str(secrets),
               "PICL_LAB_NAME": options.lab}
        env.pop("PICL_IN_LAB", None)
        try:
            load = [os.getloadavg()[0]]
            arches = [option for arch in options.arch for option in ("--arch", arch)]
            # 10 nodes boot slowly on a busy host
            picl("lab", "up", "--timeout", "600", *arches, env=env)
            picl("--lab", "apply", "--yes", env=env)  # the spec's user, who pushes, exists
            picl("--lab", "agent", "install", env=env)
            repo = root / "repo"
            repo.mkdir()
            git(repo, "init", "-q", "-b", "main")
            (repo / "cluster.toml").write_text(spec.read_text())
            git(repo, "add", "cluster.toml")
            git(repo, "commit", "-q", "-m", "the reference cluster")
            script = MEASURE.format(url=URL, primary=PRIMARY,
                                    poll=0.2 if options.arch else 0.02)
            picl("lab", "exec", "--", "bash", "-c", script, "measure", str(repo), env=env)
            sampler = SAMPLER.replace("sleep 0.2", "sleep 1") if options.arch else SAMPLER
            picl("lab", "ssh", "node0", "--", f"nohup bash -c {shlex.quote(sampler)} "
                 ">/dev/null 2>&1 &", env=env)
            seconds = []
            for run in range(options.runs):
                shell = "/bin/sh" if run % 2 == 0 else "/bin/bash"
                text = (repo / "cluster.toml").read_text()
                (repo / "cluster.toml").write_text(
                    text.replace('shell = "/bin/bash"', f'shell = "{shell}"')
                    .replace('shell = "/bin/sh"', f'shell = "{shell}"'))
                git(repo, "commit", "-q", "-am", f"federico: {shell}")
                out = picl("lab", "exec", "--", "bash", "-c", script, "measure", str(repo),
                           env=env)
                pushed, applied = (float(v) for v in out.split())
                seconds.append(applied - pushed)
            time.sleep(options.idle)
            load.append(os.getloadavg()[0])
            picl("lab", "ssh", "node0", "--", "pkill -f picl-bench-samples", env=env)
            samples = [tuple(float(v) for v in line.split()) for line in picl(
                "lab", "ssh", "node0", "--", "cat /tmp/picl-bench-samples", env=env
            ).splitlines() if len(line.split()) == 3]
            history = json.loads(picl("--lab", "history", "--json", env=env))["cycles"]
            memory = picl("lab", "ssh", "node0", "--", MEMORY, env=env).split()
        finally:
            picl("lab", "down", env=env)
    rss, pss_all = (int(v) for v in memory)
    pushes = [c for c in history if c["trigger"] == "push"][-options.runs:]
    intervals = [c for c in history if c["trigger"] == "interval"
                 and c["started"] > samples[0][0] and c["finished"] < samples[-1][0]]
    cycles = [c["finished"] - c["started"] for c in pushes]
    push_cpu = [cycle_cpu(samples, c["started"], c["finished"]) for c in pushes]
    interval_cpu = [cycle_cpu(samples, c["started"], c["finished"]) for c in intervals]
    # Idle: the service's CPU in the window after the pushes, its cycles left out.
    window = [s for s in samples if s[0] >= pushes[-1]["finished"]]
    idle_seconds = window[-1][0] - window[0][0] - sum(c["finished"] - c["started"]
                                                      for c in intervals)
    used = window[-1][2] - window[0][2] - sum(c[1] for c in interval_cpu)
    result = {
        "machine": machine(),
        "load": [round(v, 1) for v in load],
        "arch": dict(a.split("=", 1) for a in options.arch),
        "nodes": options.nodes,
        "push_to_converged_s": [round(s, 3) for s in seconds],
        "cycle_s": [round(c, 3) for c in cycles],
        "cpu": {"push": [c[0] for c in push_cpu], "push_all": [c[1] for c in push_cpu],
                "interval": [c[0] for c in interval_cpu],
                "interval_all": [c[1] for c in interval_cpu]},
        "idle": {"seconds": round(idle_seconds), "cpu_s": round(used, 3), "rss_kib": rss,
                 "pss_all_kib": pss_all},
    }
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"CPU per push cycle: median {statistics.median(c[0] for c in push_cpu):.2f}s "
          f"(service {statistics.median(c[1] for c in push_cpu):.2f}s); per interval cycle "
          f"{statistics.median(c[0] for c in interval_cpu or [(0.0, 0.0)]):.2f}s (service "
          f"{statistics.median(c[1] for c in interval_cpu or [(0.0, 0.0)]):.2f}s)")
    print(f"push to converged: median {statistics.median(seconds):.2f}s; idle CPU "
          f"{used:.2f}s in {idle_seconds:.0f}s; {pss_all / 1024:.0f} MiB in all")


if __name__ == "__main__":
    main()
