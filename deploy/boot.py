"""Boot target: graphical on the primary in the example, multi-user on headless workers."""

from __future__ import annotations

from picl.deploy.changes import Attribute, Change
from picl.deploy.commands import command, sh
from picl.deploy.view import NodeView


def changes(view: NodeView) -> list[Change]:
    wanted = f"{view.node.target}.target"
    have = view.observed.target
    if have == wanted:
        return []
    # Only the default changes: the running session is not switched under its user.
    return [Change("target", "update", (Attribute("default", have, wanted),),
                   steps=(sh(command("systemctl", "set-default", wanted)),))]
