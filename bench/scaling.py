"""Benchmark: how a no-op `picl plan` grows with the number of resources in the spec.

    .venv/bin/python bench/scaling.py [--nodes 10] [--files 0 25 50 100] [--runs 5]
                                      [--out bench/results/scaling.json]

The cluster of bench/compare.py on N lab nodes, plus K managed files on every node, for each
K: converged once by picl, then timed no-op plans, measured as compare.py measures (each run
without a shared SSH connection). How the plan grows with the nodes comes from compare.py.

    {"machine": {...}, "nodes": N, "runs": R,
     "results": [{"files": K, "wall_s": [...], "tool_cpu_s": [...], "node_cpu_s": [...]}]}
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from common import PICL, REPO, machine  # bench/common.py
from compare import Lab, measure, problem, run, spec_text  # bench/compare.py


def spec_with_files(nodes: int, files: int) -> str:
    """compare.py's cluster and `files` more managed files, small, on every node."""
    extra = "".join(f'\n[[files]]\npath = "/etc/picl-bench/{i:03}.conf"\n'
                    f'content = "setting = {i}\\n"\n' for i in range(files))
    return spec_text(nodes) + extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--files", type=int, nargs="+", default=[0, 25, 50, 100])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "scaling.json")
    options = parser.parse_args()
    result: dict[str, object] = {"machine": machine(), "nodes": options.nodes,
                                 "runs": options.runs, "results": []}
    with tempfile.TemporaryDirectory(prefix="picl-bench-scaling-") as tmp:
        lab = Lab(options.nodes, Path(tmp))
        lab.env["PICL_LAB_NAME"] = f"scale{options.nodes}"
        spec = Path(lab.env["PICL_SPEC"])
        try:
            lab.fresh()
            for files in options.files:
                spec.write_text(spec_with_files(options.nodes, files))
                run([*PICL, "--lab", "apply", "--yes"], lab.env)
                samples = []
                for _ in range(options.runs):
                    sample, proc = measure(lab, [*PICL, "--lab", "plan", "--detailed-exitcode"])
                    why = problem("picl", "plan", options.nodes, proc)
                    if why:
                        sys.exit(f"{files} files: {why}\n{proc.stdout}{proc.stderr}")
                    samples.append(sample)
                print(f"{files} files: {sorted(s.wall for s in samples)}", file=sys.stderr)
                result["results"].append({  # type: ignore[union-attr]
                    "files": files,
                    "wall_s": [round(s.wall, 3) for s in samples],
                    "tool_cpu_s": [round(s.tool_cpu, 3) for s in samples],
                    "node_cpu_s": [round(s.node_cpu, 3) for s in samples],
                })
        finally:
            lab.down()
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
