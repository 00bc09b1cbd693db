"""The LED service on every node with `leds = "blinkt"`: its files, its unit, running.

The service's code lives with the agent (picl.reconciler.leds); whoever starts a run (the CLI,
the agent) hands its files down as data in `ClusterFacts.led_service`, so deploy imports
nothing above it.
"""

from __future__ import annotations

from picl.deploy.changes import Change, text_diff
from picl.deploy.commands import command, put, sh
from picl.deploy.view import ClusterFacts, NodeView
from picl.facts.node import Reads
from picl.spec import Cluster, Node

UNIT = "picl-leds.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT}"


def reads(cluster: Cluster, node: Node, shared: ClusterFacts) -> Reads:
    """The unit (on every node: a strip that went away leaves one) and the service's files."""
    service = tuple(shared.led_service) if node.leds == "blinkt" else ()
    return Reads(files=(UNIT_PATH, *service), units=(UNIT,))


def changes(view: NodeView) -> list[Change]:
    service = view.shared.led_service
    enabled = view.observed.units.get(UNIT, ("", ""))[0] == "enabled"
    if view.node.leds != "blinkt" or not service:
        if not enabled and view.observed.file(UNIT_PATH) is None:
            return []
        # picl installed it: a node whose strip went away loses the service too.
        return [Change("leds service", "remove", steps=(sh(
            command("systemctl", "disable", "--now", UNIT),
            command("rm", "-f", UNIT_PATH),
            "systemctl daemon-reload",
        ),))]
    stale = {path: text for path, text in service.items() if view.observed.file(path) != text}
    running = view.observed.units.get(UNIT, ("", ""))[1] == "active"
    if not stale and enabled and running:
        return []
    unit_before = view.observed.file(UNIT_PATH)
    diff = text_diff(UNIT_PATH, unit_before, service[UNIT_PATH]) if UNIT_PATH in stale else ""
    steps = [put(path, text) for path, text in sorted(stale.items())]
    steps.append(sh("systemctl daemon-reload", command("systemctl", "enable", UNIT),
                    command("systemctl", "restart", UNIT)))
    return [Change("leds service", "create" if unit_before is None else "update",
                   diff=diff, steps=tuple(steps))]
