"""Benchmark: the agent's push-to-converged latency, and what it costs idle on the primary.

    .venv/bin/python bench/agent.py [--runs 10] [--out bench/results/agent.json]

A lab of the reference cluster (no GitHub keys: the lab has no uplink), the agent installed
with `picl --lab agent install`, a first push converged. Then each run commits a change to a
user (federico's shell, on every node), pushes it to the primary and, from inside the lab,
waits on the primary until the agent's status says that revision is applied: the time from
the push returning to that. Last, the agent idle for two minutes: CPU used by it and its
children (the idle SSH sessions, git), and their memory: the service's cgroup. Writes:

    {"machine": {...}, "nodes": 3, "push_to_converged_s": [...], "cycle_s": [...],
     "idle": {"seconds", "cpu_s", "rss_kib" (the agent's resident memory),
              "pss_all_kib" (every process of the service, shared pages counted once)}}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from common import PICL, REPO, machine  # bench/common.py

URL = "ssh://root@10.1.10.240/srv/picl/cluster.git"
LAB = "metricsafter"
# Inside the lab: push, then wait on the primary for the status to name the revision applied.
MEASURE = r"""
set -e
cd "$1"
sha=$(git rev-parse HEAD)
git push -q {url} HEAD:main
t1=$(date +%s.%N)
ssh 10.1.10.240 "until grep -q '\"applied\": \"$sha\"' /var/lib/picl/status.json; \
  do sleep 0.02; done"
t2=$(date +%s.%N)
echo "$t1 $t2"
"""
# On the primary: CPU and memory of every process of the agent's service (its cgroup: the
# agent, its SSH sessions and their shared connections, git) over an idle while.
IDLE_SECONDS = 120
IDLE = r"""
pid=$(systemctl show -p MainPID --value picl-agent)
base=/sys/fs/cgroup; [ -d $base/unified ] && base=$base/unified  # a hybrid hierarchy's v2
cg=$base$(awk -F: '$1 == "0" {print $3}' /proc/$pid/cgroup)
[ -f $cg/cpu.stat ] || { echo "no cgroup v2 cpu.stat for picl-agent: $cg" >&2; exit 1; }
usage() { awk '/^usage_usec/ {print $2}' $cg/cpu.stat; }
a=$(usage); sleep __SECONDS__; b=$(usage)
echo "$((b-a)) 1000000 $(awk '/VmRSS/ {print $2}' /proc/$pid/status) \
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "agent.json")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="picl-bench-agent-") as tmp:
        root = Path(tmp)
        spec = root / "cluster.toml"
        spec.write_text("\n".join(line for line in (REPO / "cluster.toml").read_text()
                                  .splitlines() if not line.startswith("github = ")) + "\n")
        secrets = root / "secrets.toml"
        hashed = subprocess.run(["openssl", "passwd", "-6", "bench"], capture_output=True,
                                text=True, check=True).stdout.strip()
        secrets.write_text(f'wifi_psk = "not-a-real-psk"\nroot_password_hash = "{hashed}"\n')
        secrets.chmod(0o600)
        env = {**os.environ, "PICL_SPEC": str(spec), "PICL_SECRETS": str(secrets),
               "PICL_LAB_NAME": LAB}
        env.pop("PICL_IN_LAB", None)
        picl("lab", "up", env=env)
        try:
            picl("--lab", "apply", "--yes", env=env)  # makes the spec's user, who pushes
            picl("--lab", "agent", "install", env=env)
            repo = root / "repo"
            repo.mkdir()
            git(repo, "init", "-q", "-b", "main")
            (repo / "cluster.toml").write_text(spec.read_text())
            git(repo, "add", "cluster.toml")
            git(repo, "commit", "-q", "-m", "the reference cluster")
            script = MEASURE.format(url=URL)
            picl("lab", "exec", "--", "bash", "-c", script, "measure", str(repo), env=env)
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
            idle = picl("lab", "ssh", "node0", "--", IDLE.replace("__SECONDS__", str(IDLE_SECONDS)),
                        env=env).split()
            history = json.loads(picl("--lab", "history", "--json", env=env))["cycles"]
        finally:
            picl("lab", "down", env=env)
    used, per_second, rss, pss_all = (int(v) for v in idle)
    cycles = [c["finished"] - c["started"] for c in history[-options.runs:]]
    result = {
        "machine": machine(),
        "nodes": len(tomllib.loads((REPO / "cluster.toml").read_text())["nodes"]),
        "push_to_converged_s": [round(s, 3) for s in seconds],
        "cycle_s": [round(c, 3) for c in cycles],
        "idle": {"seconds": IDLE_SECONDS, "cpu_s": used / per_second, "rss_kib": rss,
                 "pss_all_kib": pss_all},
    }
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"push to converged: median {statistics.median(seconds):.2f}s; idle CPU "
          f"{used / per_second:.2f}s in {IDLE_SECONDS}s; {pss_all / 1024:.0f} MiB in all")


if __name__ == "__main__":
    main()
