"""Benchmark of the lab: cold image builds, `lab up` of 3 and 30 nodes on a warm image, `down`.

    sudo .venv/bin/python bench/lab.py [--runs N] [--cold RELEASE[:ARCH]...] [--skip-cold]
        [--skip-warm] [--out bench/results/lab.md]

Goals (issue 3, on a 2-core machine): 3 nodes up <= 15 s, 30 nodes up <= 90 s. Measures the
CLI as a user runs it (`picl lab up`), wall clock, one lab at a time; writes a Markdown report
with the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, machine_text  # bench/common.py

SPEC = REPO / "cluster.toml"
GOALS = {3: 15.0, 30: 90.0}


def picl(*args: str, spec: Path, name: str) -> float:
    """Run `picl lab ...` and return its wall-clock seconds; any failure stops the benchmark."""
    env = dict(os.environ, PICL_SPEC=str(spec), PICL_LAB_NAME=name)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", "from picl.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"picl {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return elapsed


def spec_with(nodes: int, directory: Path) -> Path:
    """cluster.toml's packages and network with `nodes` nodes (the same image as the tests)."""
    lines = [
        "[cluster]",
        'name = "bench"',
        'primary = "node0"',
        "",
        "[network]",
        'subnet = "10.1.30.0/24"',
        'interface = "eth0"',
        "",
        "[packages]",
        'all = ["htop", "stress", "openmpi-bin"]',
    ]
    for i in range(nodes):
        lines += ["", "[[nodes]]", f'name = "node{i}"', f'address = "10.1.30.{10 + i}"']
    path = directory / f"bench-{nodes}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cold_build(release: str, arch: str) -> float:
    """Build a node image of `release` for `arch` from nothing, beside the cache."""
    from picl.lab import image, mirror

    scratch = Path(tempfile.mkdtemp(prefix="bench-", dir=image.CACHE.parent))
    try:
        started = time.monotonic()
        image.build(release, arch, mirror.configured(), scratch / "image")
        return time.monotonic() - started
    finally:
        shutil.rmtree(scratch)


def _other_labs() -> list[str]:
    """Labs already on the machine: they share the 2 cores with what is measured."""
    from picl.lab import labs_on_host

    return labs_on_host()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="runs of each warm measurement")
    parser.add_argument(
        "--cold",
        nargs="+",
        default=["bookworm", "trixie", "bullseye", "bookworm:arm64"],
        metavar="RELEASE[:ARCH]",
        help="the images whose cold build is measured",
    )
    parser.add_argument("--skip-cold", action="store_true", help="do not measure cold builds")
    parser.add_argument("--skip-warm", action="store_true", help="do not measure up and down")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/lab.md")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the lab needs root")

    load_before = os.getloadavg()[0]
    others = _other_labs()
    rows: list[tuple[str, list[float], str]] = []
    for wanted in [] if args.skip_cold else args.cold:
        release, _, arch = wanted.partition(":")
        arch = arch or "amd64"
        seconds = cold_build(release, arch)
        rows.append((f"cold image build, Raspberry Pi OS Lite {release} {arch}", [seconds], ""))
        print(f"cold image build {release} {arch}: {seconds:.1f} s", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        if args.skip_warm:
            return _report(args, rows, load_before, others)
        # Warm the image cache (a no-op when it is): `up` and `down` of one node.
        warm = spec_with(1, Path(tmp))
        picl("lab", "up", spec=warm, name="bench-warm")
        picl("lab", "down", spec=warm, name="bench-warm")
        for count in (3, 30):
            spec = spec_with(count, Path(tmp))
            name = f"bench-{count}"
            picl("lab", "down", spec=spec, name=name)
            ups, downs = [], []
            for _ in range(args.runs):
                ups.append(picl("lab", "up", spec=spec, name=name))
                picl("lab", "up", spec=spec, name=name)  # idempotent: all there, all kept
                downs.append(picl("lab", "down", spec=spec, name=name))
                print(f"{count} nodes: up {ups[-1]:.1f} s, down {downs[-1]:.1f} s", flush=True)
            goal = GOALS[count]
            verdict = "meets" if max(ups) <= goal else "misses"
            rows.append((f"`lab up`, {count} nodes, warm image", ups, f"{verdict} <= {goal:.0f} s"))
            rows.append((f"`lab down`, {count} nodes", downs, ""))
    _report(args, rows, load_before, others)


def _report(
    args: argparse.Namespace,
    rows: list[tuple[str, list[float], str]],
    load_before: float,
    others: list[str],
) -> None:
    report = [
        "# Lab benchmark",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {machine_text()}",
        f"- load: 1-minute load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; "
        f"other labs up at the start: {', '.join(others) if others else 'none'}",
        f"- command: `bench/lab.py {' '.join(sys.argv[1:])}`",
        "- what: wall clock of `picl lab up` until every node answers SSH (host key checked),",
        "  and of `picl lab down` until nothing of the lab is left; one lab at a time.",
        "",
        "| measurement | runs | median (s) | min (s) | max (s) | goal |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for what, values, goal in rows:
        report.append(
            f"| {what} | {len(values)} | {statistics.median(values):.1f} | "
            f"{min(values):.1f} | {max(values):.1f} | {goal} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(report) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
