"""Benchmark: what one agent cycle costs picl's own process, measured in the process.

    picl lab exec -- .venv/bin/python bench/cycle.py [--cycles 5] [--out FILE]

Run inside the lab of a converged spec ($PICL_SPEC, $PICL_SECRETS): the agent's work of a
no-op cycle, as `reconciler.loop` does it, repeated: the spec loaded, every node read and
planned (`make_plan`), the LED records written to every node (`strips.write`). Each cycle is
run twice: `warm`, over the shared SSH connections the last cycle left open (the agent now
holds them), and `cold`, after closing them (an interval cycle of the agent as it was: its
connections lived 60 s, its interval is 5 minutes). CPU time of this process (user + system,
getrusage; threads included) and of its children (ssh), and the process's peak resident set.
The plan must be empty, or the bench stops. The agent's service (bench/agent.py) adds git,
the status file and idle sessions.

    {"machine": {...}, "nodes": N, "cycles": C,
     "warm": {"self_s": [...], "children_s": [...]}, "cold": {...}, "maxrss_mib": M}
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
from pathlib import Path

from common import machine  # bench/common.py

from picl.reconciler import strips
from picl.reconciler.status import Status
from picl.spec import load
from picl.transport.connection import Connection


def cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def close_shared(connection: Connection) -> None:
    """End every shared connection: the next cycle opens its own."""
    for socket in connection.control.glob("*") if connection.control else ():
        subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "x"],
                       capture_output=True, stdin=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--out", type=Path)
    options = parser.parse_args()
    spec, secrets = Path(os.environ["PICL_SPEC"]), Path(os.environ["PICL_SECRETS"])
    from picl.deploy.converge import Target, make_plan

    connection = Connection.from_environ()
    result: dict[str, object] = {"machine": machine(), "cycles": options.cycles}
    cluster = None
    for kind in ("warm", "cold", "warm"):  # the first warm run only opens the connections
        own, children = [], []
        for _ in range(options.cycles):
            if kind == "cold":
                close_shared(connection)
            before = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
            cluster = load(spec, secrets, warn=lambda message: None)
            target = Target(cluster=cluster, connection=connection, secrets_file=secrets,
                            spec_dir=spec.parent,
                            led_service=strips.service_files(cluster, "blinkt"))
            plan = make_plan(target)
            if plan.changes or plan.failed:
                raise SystemExit(f"not a no-op plan: {plan.changes} changes, "
                                 f"{[n.error for n in plan.failed]}")
            names = [n.name for n in cluster.nodes]
            strips.write(cluster, strips.records(Status(), names, cluster.primary.name, 0.0),
                         connection)
            own.append(round(cpu(resource.RUSAGE_SELF) - before[0], 3))
            children.append(round(cpu(resource.RUSAGE_CHILDREN) - before[1], 3))
        result[kind] = {"self_s": own, "children_s": children}
    assert cluster is not None
    result["nodes"] = len(cluster.nodes)
    result["maxrss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    text = json.dumps(result, indent=1) + "\n"
    if options.out:
        options.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
