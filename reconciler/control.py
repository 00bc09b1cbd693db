"""What people ask of the running agent: files it watches in its control directory.

- `suspended` (JSON: by whom, since when): while it exists, the agent converges nothing and
  says so in its status and on the LEDs. It survives a reboot: a pause is lifted by a person.
- `reconcile`: a cycle now. The agent removes it when it starts that cycle.

The requests are shell text, so that the CLI runs the same thing on the primary and over SSH.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

SUSPENDED = "suspended"
RECONCILE = "reconcile"


def suspend_command(control: Path, by: str, now: float | None = None) -> str:
    body = json.dumps({"by": by, "since": time.time() if now is None else now})
    target = shlex.quote(str(control / SUSPENDED))
    return (f"mkdir -p {shlex.quote(str(control))} && "
            f"printf '%s\\n' {shlex.quote(body)} > {target}.new && mv -f {target}.new {target}")


def resume_command(control: Path) -> str:
    return f"rm -f {shlex.quote(str(control / SUSPENDED))}"


def reconcile_command(control: Path) -> str:
    return (f"mkdir -p {shlex.quote(str(control))} && "
            f"date +%s > {shlex.quote(str(control / RECONCILE))}")


def suspension(control: Path) -> tuple[str, float] | None:
    """(by whom, since when) when the agent is asked to stay paused, else None."""
    try:
        data = json.loads((control / SUSPENDED).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return "", time.time()  # a damaged request still pauses: a person meant to
    if not isinstance(data, dict):
        return "", time.time()
    since = data.get("since")
    return str(data.get("by", "")), float(since) if isinstance(since, (int, float)) else 0.0


def take_reconcile_request(control: Path) -> bool:
    """Whether a cycle was asked for; the request is consumed."""
    try:
        (control / RECONCILE).unlink()
    except FileNotFoundError:
        return False
    return True
