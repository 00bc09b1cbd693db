"""Benchmark: how long picl takes to start, as a person at a prompt feels it.

    .venv/bin/python bench/startup.py [--runs 20] [--out bench/results/startup.json]

Wall clock and CPU time (user + system, getrusage of the reaped command) of whole commands,
run one after another on the reference cluster.toml: `picl --help` (the command line alone),
`picl validate` (the spec loaded and checked) and `picl schema`. No lab, no network. CPU time
is the figure to trust on a loaded machine: it does not count the time waiting for a core.
Bytecode caches are written and used (the first run writes them), as for an installed picl.
Writes the raw figures and the machine to a JSON file:

    {"machine": {...}, "runs": N, "commands": {"picl --help": [seconds, ...], ...},
     "cpu": {"picl --help": [CPU seconds, ...], ...}}
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import time
from pathlib import Path

from common import PICL, REPO, machine

COMMANDS = {
    "picl --help": ["--help"],
    "picl validate": ["--spec", str(REPO / "cluster.toml"), "validate"],
    "picl schema": ["schema"],
}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def seconds(args: list[str]) -> tuple[float, float]:
    """One run's wall clock and CPU time; the command must succeed."""
    cpu, started = children_cpu(), time.monotonic()
    subprocess.run([*PICL, *args], check=True, capture_output=True, stdin=subprocess.DEVNULL,
                   env=ENV)
    return time.monotonic() - started, children_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "startup.json")
    options = parser.parse_args()
    for args in COMMANDS.values():
        seconds(args)  # warm the page cache: every later run starts alike
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpu: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(options.runs):  # interleaved: noise hits every command alike
        for name, args in COMMANDS.items():
            wall, used = seconds(args)
            times[name].append(round(wall, 4))
            cpu[name].append(round(used, 4))
    result = {"machine": machine(), "runs": options.runs, "commands": times, "cpu": cpu}
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(result, indent=1) + "\n")
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values):.3f}s, CPU "
              f"{statistics.median(cpu[name]):.3f}s")


if __name__ == "__main__":
    main()
