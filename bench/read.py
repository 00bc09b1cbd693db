"""Benchmark: what the node-side read of a plan costs each node.

    .venv/bin/python bench/read.py --as before|after [--nodes 10] [--reads 20]
                                   [--out bench/results/read.json]

compare.py's cluster on N lab nodes, converged once by picl. On every node, in one SSH session
each, the read picl's plan sends that node runs `--reads` times, all nodes at once:

- processes: the pids the node's own pid namespace handed out while one read ran
  (/proc/sys/kernel/ns_last_pid before and after), the read's shell included; the median over
  the nodes of the fewest any read took (a node's own timers can only add);
- node CPU per read: the lab's cgroup CPU while the reads ran, over nodes x reads, less what
  the same loop costs around an empty command.

The result is kept under the `--as` key of --out, beside the other one, so one file holds the
code's read before and after a change:

    {"before": {"machine": {...}, "nodes": N, "reads": R, "processes": [...per node],
                "node_cpu_ms": F, "script_bytes": B}, "after": {...}}
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import PICL, REPO, machine  # bench/common.py
from compare import Lab, run  # bench/compare.py

# One SSH session: the read `$2` times, each between two readings of the last pid handed out
# (by cat: the file answers only a read from its start; the second cat's pid is not the read's).
LOOP = """\
n=0 fewest=
while [ $n -lt "$2" ]; do
  a=$(cat /proc/sys/kernel/ns_last_pid)
  sh -c "$1" > /dev/null 2>&1
  b=$(cat /proc/sys/kernel/ns_last_pid)
  used=$((b - a - 1)); n=$((n + 1))
  if [ -z "$fewest" ] || [ $used -lt $fewest ]; then fewest=$used; fi
done
echo "$fewest"
"""


def scripts(spec: Path) -> dict[str, str]:
    """The read a plan sends each node of `spec`, as picl builds it."""
    code = (
        "import json, sys\n"
        "from picl.cli.converge import led_service\n"
        "from picl.deploy.plan import reads\n"
        "from picl.deploy.view import ClusterFacts\n"
        "from picl.facts.node import script\n"
        "from picl.spec import load\n"
        "cluster = load(sys.argv[1])\n"
        "shared = ClusterFacts(led_service=led_service(cluster))\n"
        "print(json.dumps({n.name: script(reads(cluster, n, shared)) for n in cluster.nodes}))\n"
    )
    out = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", code, str(spec)],
                         capture_output=True, text=True, check=True, env={"PICL_IN_LAB": "1"})
    return json.loads(out.stdout)


def loop(lab: Lab, node: str, script: str, reads: int) -> int:
    """Run `script` `reads` times on `node`; the fewest pids one run used."""
    remote = shlex.join(["sh", "-c", LOOP, "loop", script, str(reads)])
    return int(run([*PICL, "lab", "ssh", node, "--", remote], lab.env).strip())


def all_nodes(lab: Lab, each: dict[str, str], reads: int) -> tuple[list[int], float]:
    """Every node's loop at once: (fewest pids per node, the nodes' CPU seconds)."""
    before = lab.node_cpu()
    with ThreadPoolExecutor(max_workers=len(each)) as pool:
        fewest = list(pool.map(lambda item: loop(lab, item[0], item[1], reads), each.items()))
    return fewest, lab.node_cpu() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as", dest="label", choices=("before", "after"), required=True)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--reads", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "read.json")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="picl-bench-read-") as tmp:
        lab = Lab(options.nodes, Path(tmp))
        lab.env["PICL_LAB_NAME"] = f"read{options.nodes}"
        try:
            lab.fresh()
            run([*PICL, "--lab", "apply", "--yes"], lab.env)
            each = scripts(Path(lab.env["PICL_SPEC"]))
            _, empty = all_nodes(lab, dict.fromkeys(each, "true"), options.reads)
            processes, used = all_nodes(lab, each, options.reads)
        finally:
            lab.down()
    per_read = (used - empty) / (options.nodes * options.reads)
    result = {
        "machine": machine(), "nodes": options.nodes, "reads": options.reads,
        "processes": processes, "node_cpu_ms": round(per_read * 1000, 2),
        "script_bytes": round(statistics.median(len(s) for s in each.values())),
    }
    print(json.dumps(result), file=sys.stderr)
    found = json.loads(options.out.read_text()) if options.out.exists() else {}
    found[options.label] = result
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(found, indent=1) + "\n")


if __name__ == "__main__":
    main()
