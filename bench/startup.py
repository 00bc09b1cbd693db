"""Benchmark: how long picl takes to start, as a person at a prompt feels it.

    .venv/bin/python bench/startup.py [--runs 20] [--out bench/results/startup.json]

Wall clock of whole commands, run one after another on the reference cluster.toml: `picl
--help` (the command line alone), `picl validate` (the spec loaded and checked) and `picl
schema`. No lab, no network. Writes the raw times and the machine to a JSON file:

    {"machine": {...}, "runs": N, "commands": {"picl --help": [seconds, ...], ...}}
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from common import PICL, REPO, machine

COMMANDS = {
    "picl --help": ["--help"],
    "picl validate": ["--spec", str(REPO / "cluster.toml"), "validate"],
    "picl schema": ["schema"],
}


def seconds(args: list[str]) -> float:
    """One run's wall clock; the command must succeed."""
    started = time.monotonic()
    subprocess.run([*PICL, *args], check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "startup.json")
    options = parser.parse_args()
    for args in COMMANDS.values():
        seconds(args)  # warm the page cache: every later run starts alike
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(options.runs):  # interleaved: noise hits every command alike
        for name, args in COMMANDS.items():
            times[name].append(round(seconds(args), 4))
    result = {"machine": machine(), "runs": options.runs, "commands": times}
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(result, indent=1) + "\n")
    for name, values in times.items():
        print(f"{name}: median {sorted(values)[len(values) // 2]:.3f}s")


if __name__ == "__main__":
    main()
