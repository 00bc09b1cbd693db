"""What a node's LEDs show: the record the agent writes to the node at each cycle.

`STATE_FILE` (/run/picl/leds.json) holds one JSON object:

    {"state": "applying", "nodes": ["converged", "applying", "unreachable"], "expires": 1764120300}

- `state`: this node's state, one of `frames.STATES`.
- `nodes` (optional): one state per node, in the spec's order. When present (the primary, in
  status mode) pixel i shows node i; the agent leaves it out to show one state on the strip.
- `expires` (optional): Unix time after which the record is stale; the strip then shows
  `unreachable`, since no word from the agent came in time.

It lives under /run, a tmpfs: after a power cut the strip stays dark (`unknown`) until the
agent's first cycle reaches the node, and never shows a state from before the cut. Writers
replace it atomically (`write`). A missing, unreadable or malformed file, and any state name
this version does not know, read as `unknown`: the LEDs never fail on what the agent wrote.

Standard library only: shipped to nodes with the rest of this package.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .frames import STATES, Frame, frame, status_frame

STATE_FILE = "/run/picl/leds.json"


def _state(value: object) -> str:
    return value if isinstance(value, str) and value in STATES else "unknown"


@dataclass(frozen=True)
class Record:
    """One node's LED state as the agent last wrote it."""

    state: str = "unknown"
    nodes: tuple[str, ...] = ()
    expires: float | None = None

    def __post_init__(self) -> None:
        for state in (self.state, *self.nodes):
            if state not in STATES:
                raise ValueError(f"unknown LED state {state!r}; known: {', '.join(STATES)}")

    def to_json(self) -> str:
        """The record as the state file holds it."""
        data: dict[str, object] = {"state": self.state}
        if self.nodes:
            data["nodes"] = list(self.nodes)
        if self.expires is not None:
            data["expires"] = self.expires
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Record:
        """Parse a state file's text; anything it cannot use reads as `unknown`."""
        try:
            data = json.loads(text)
        except ValueError:
            return cls()
        if not isinstance(data, dict):
            return cls()
        nodes = data.get("nodes")
        expires = data.get("expires")
        return cls(
            state=_state(data.get("state")),
            nodes=tuple(_state(n) for n in nodes) if isinstance(nodes, list) else (),
            expires=(
                float(expires)
                if isinstance(expires, (int, float)) and not isinstance(expires, bool)
                else None
            ),
        )

    def stale(self, now: float) -> bool:
        """Whether the agent's word has run out at Unix time `now`."""
        return self.expires is not None and now >= self.expires

    def frame(self, step: int, brightness: float, now: float) -> Frame:
        """What the strip shows at animation `step` and Unix time `now`."""
        if self.stale(now):
            return frame("unreachable", step, brightness)
        if self.nodes:
            return status_frame(self.nodes, step, brightness)
        return frame(self.state, step, brightness)


def read(path: str | os.PathLike[str] = STATE_FILE) -> Record:
    """The record in a state file; a missing or unreadable file reads as `unknown`."""
    try:
        return Record.from_json(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return Record()


def write(record: Record, path: str | os.PathLike[str] = STATE_FILE) -> None:
    """Replace the state file atomically, so the LED service never reads half a record."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(record.to_json() + "\n")
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
