"""Benchmark: the agent's push-to-converged latency, and what it costs idle on the primary.

    .venv/bin/python bench/agent.py [--runs 10] [--out bench/results/agent.md]

A lab of the reference cluster (no GitHub keys: the lab has no uplink), the agent installed
with `picl --lab agent install`, a first push converged. Then each run commits a change to a
user (federico's shell, on every node), pushes it to the primary and, from inside the lab,
waits on the primary until the agent's status says that revision is applied: the time from
the push returning to that. Last, the agent idle for two minutes: CPU used by it and its
children (the idle SSH sessions, git), and their memory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import PICL, REPO, machine_text  # bench/common.py

URL = "ssh://root@10.1.10.240/srv/picl/cluster.git"
LAB = "agentbench"
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
# On the primary: CPU ticks and memory of the agent and its children over two idle minutes.
IDLE = r"""
pid=$(systemctl show -p MainPID --value picl-agent)
ticks() { s=0; for p in $pid $(ps -o pid= --ppid $pid); do
  v=$(awk '{print $14+$15+$16+$17}' /proc/$p/stat); s=$((s+v)); done; echo $s; }
a=$(ticks); sleep 120; b=$(ticks)
echo "$((b-a)) $(getconf CLK_TCK) $(awk '/VmRSS/ {print $2}' /proc/$pid/status) \
$(ps -o rss= -p $pid --ppid $pid | awk '{s+=$1} END {print s}')"
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
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "agent.md")
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
        env = {**os.environ, "PICL_SPEC": str(spec), "PICL_SECRETS": str(secrets),
               "PICL_LAB_NAME": LAB}
        env.pop("PICL_IN_LAB", None)
        picl("lab", "up", env=env)
        try:
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
            idle = picl("lab", "ssh", "node0", "--", IDLE, env=env).split()
            history = json.loads(picl("--lab", "history", "--json", env=env))["cycles"]
        finally:
            picl("lab", "down", env=env)
    ticks, hz, rss, rss_all = (int(v) for v in idle)
    cycles = [c["finished"] - c["started"] for c in history[-options.runs:]]
    report = [
        "# The agent: push-to-converged latency, and its idle cost on the primary",
        "",
        f"Machine: {machine_text()}. Lab of the reference cluster (3 nodes). Produced by "
        "`bench/agent.py`.",
        "",
        f"Push to converged ({options.runs} pushes, each changing a user on every node): from "
        "`git push` returning to the agent's status naming the revision applied, read on the "
        "primary.",
        "",
        "| measure | median s | min-max s |",
        "|---|---:|---:|",
        f"| push to converged | {statistics.median(seconds):.2f} | "
        f"{min(seconds):.2f}-{max(seconds):.2f} |",
        f"| the cycle alone (fetch, verify, load, plan, apply, record) | "
        f"{statistics.median(cycles):.2f} | {min(cycles):.2f}-{max(cycles):.2f} |",
        "",
        f"Idle for 120 s: {ticks / hz:.2f} s of CPU ({100 * ticks / hz / 120:.3f}%) for the "
        f"agent and its children; the agent's RSS {rss / 1024:.0f} MiB, "
        f"{rss_all / 1024:.0f} MiB with its children (an idle SSH session per other node, "
        "git's object readers).",
        "",
    ]
    options.out.write_text("\n".join(report))
    print("\n".join(report))


if __name__ == "__main__":
    main()
