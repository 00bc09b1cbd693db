"""Benchmark: a no-op plan and a no-op apply with picl, beside a hand-written pyinfra deploy.

    .venv/bin/python bench/converge.py [--nodes 3 10] [--runs 5] [--out bench/results/converge.md]

For each cluster size: a lab of the reference cluster grown to N nodes, converged once by
picl; then, in one run on the same nodes, alternating: `picl --lab plan`, `picl --lab apply
--yes` (nothing to do), pyinfra's change detection and `pyinfra -y` of bench/pyinfra/deploy.py
(the same resources, written by hand, contents taken from the converged nodes so both are
no-ops).
Wall clock, median and spread of several runs; the machine it ran on goes into the report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "bench" / "pyinfra" / "deploy.py"
PICL = [sys.executable, "-c", "from picl.cli import main; main()"]
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
MOTD = "arrakis: the spice must flow\n"
PLAN_COMMANDS = ("picl plan", "picl apply", "pyinfra (plan)", "pyinfra -y")


def spec_text(nodes: int) -> str:
    """The reference cluster with `nodes` nodes and a managed file."""
    text = (REPO / "cluster.toml").read_text()
    head, _, _ = text.partition("[[nodes]]")
    _, _, tail = text.partition("[[users]]")
    lines = [head.rstrip(), ""]
    for i in range(nodes):
        lines += ["[[nodes]]", f'name = "node{i}"', f'address = "10.1.10.{100 + i}"']
        lines += ['target = "graphical"'] if i == 0 else []
        lines.append("")
    lines += ["[[users]]" + tail.rstrip(), "", "[[files]]", 'path = "/etc/motd"',
              f"content = {json.dumps(MOTD)}", ""]
    return "\n".join(lines)


def run(argv: list[str], env: dict[str, str], check: bool = True, expect: str = "") -> float:
    """Wall-clock seconds of a command; it must succeed (or print `expect`)."""
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, cwd=tempfile.gettempdir())
    elapsed = time.monotonic() - started
    failed = expect not in proc.stdout + proc.stderr if expect else proc.returncode != 0
    if check and failed:
        sys.exit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return elapsed


def machine() -> str:
    memory = next(line for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    gib = int(memory.split()[1]) / 1024 / 1024
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    return (f"{os.cpu_count()} cores ({cpu}), {gib:.0f} GiB, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}, "
            f"{time.strftime('%Y-%m-%d')}")


def inventory(directory: Path, env: dict[str, str], nodes: int) -> Path:
    """A pyinfra inventory of the lab's nodes whose data is what picl converged them to."""
    def read(node: str, path: str) -> str:
        proc = subprocess.run([*PICL, "lab", "ssh", node, "--", "cat", path], env=env,
                              capture_output=True, text=True, check=True)
        return proc.stdout

    hosts = []
    for i in range(nodes):
        name = f"node{i}"
        data = {
            "ssh_hostname": f"10.1.10.{100 + i}",
            "sudoers": read(name, "/etc/sudoers.d/picl-federico"),
            "authorized_keys": read(name, "/home/federico/.ssh/authorized_keys"),
            "hosts": read(name, "/etc/hosts"),
            "chrony": read(name, "/etc/chrony/chrony.conf"),
            "motd": read(name, "/etc/motd"),
            "exports": read(name, "/etc/exports.d/picl.exports") if i == 0 else "",
            "target": "graphical" if i == 0 else "multi-user",
            "timezone": "America/New_York",
            "packages": ["htop", "stress", "openmpi-bin"],
        }
        hosts.append((name, data))
    path = directory / "inventory.py"
    # `picl lab exec` gives the lab's key and known_hosts in the environment: pyinfra uses both.
    path.write_text(
        "import os\n"
        "_ssh = {'ssh_user': 'root', 'ssh_key': os.environ['PICL_SSH_KEY'],\n"
        "        'ssh_known_hosts_file': os.environ['PICL_KNOWN_HOSTS'],\n"
        "        'ssh_strict_host_key_checking': 'yes'}\n"
        f"nodes = [(name, {{**_ssh, **data}}) for name, data in {hosts!r}]\n"
    )
    return path


def bench(nodes: int, runs: int, work: Path) -> dict[str, list[float]]:
    spec = work / f"cluster-{nodes}.toml"
    spec.write_text(spec_text(nodes))
    secrets = work / f"secrets-{nodes}.toml"
    secrets.write_text('wifi_psk = "bench-not-a-secret"\nroot_password_hash = "$6$bench$x"\n')
    secrets.chmod(0o600)
    env = dict(os.environ, PICL_SPEC=str(spec), PICL_SECRETS=str(secrets),
               PICL_LAB_NAME=f"bench{nodes}", PICL_GITHUB_URL=(work / "gh").as_uri(),
               XDG_CACHE_HOME=str(work / "cache"))
    (work / "gh").mkdir(exist_ok=True)
    (work / "gh" / "flucifredi.keys").write_text("")
    run([*PICL, "lab", "up"], env)
    try:
        run([*PICL, "--lab", "apply", "--yes"], env)
        inv = inventory(work, env, nodes)
        exec_ = [*PICL, "lab", "exec", "--"]
        pyinfra_env = dict(env, PYINFRA_PROGRESS="off")
        times: dict[str, list[float]] = {k: [] for k in PLAN_COMMANDS}
        for _ in range(runs):
            times["picl plan"].append(run([*PICL, "--lab", "plan", "--detailed-exitcode"], env))
            times["picl apply"].append(run([*PICL, "--lab", "apply", "--yes"], env))
            # pyinfra's plan is its change detection before the "execute?" prompt (answered
            # by end-of-input, so nothing runs); `--dry` skips change detection altogether.
            times["pyinfra (plan)"].append(
                run([*exec_, PYINFRA, str(inv), str(DEPLOY)], pyinfra_env,
                    expect="Detected changes displayed above"))
            times["pyinfra -y"].append(run([*exec_, PYINFRA, "-y", str(inv), str(DEPLOY)],
                                           pyinfra_env))
        return times
    finally:
        run([*PICL, "lab", "down"], env, check=False)


def report(results: dict[int, dict[str, list[float]]], runs: int) -> str:
    lines = [
        "# No-op plan and apply: picl beside a hand-written pyinfra deploy",
        "",
        f"Machine: {machine()}. Each figure is the median of {runs} runs (min-max), wall clock",
        "of the whole command as a user runs it, on lab nodes that already match the spec.",
        "picl reads each node with one command (the NodeState fact); the pyinfra deploy reads",
        "a fact per operation. Produced by `bench/converge.py`.",
        "",
        "| nodes | command | median s | min-max s | vs picl plan |",
        "|---:|---|---:|---:|---:|",
    ]
    for nodes, times in results.items():
        base = statistics.median(times["picl plan"])
        for command, values in times.items():
            median = statistics.median(values)
            lines.append(f"| {nodes} | `{command}` | {median:.2f} | "
                         f"{min(values):.2f}-{max(values):.2f} | {median / base:.1f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "converge.md")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for nodes in args.nodes:
            results[nodes] = bench(nodes, args.runs, Path(tmp))
    text = report(results, args.runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
