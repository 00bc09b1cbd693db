"""Notifications: one message per transition of the agent's state, never one per cycle.

`events` is pure: the mark the last event left and the status a cycle ended with in, the events
to send and the new mark out. A stall that lasts a day is one "stalled"; its end one
"recovered". Waiting (another apply holds the lock, the upstream is out of reach) is no event
and keeps the mark. `Notifier` sends each event to the spec's `[[notify]]` entries from threads
of their own, each bounded by its timeout: a notifier that fails or hangs is logged, and never
delays or fails a cycle. A webhook's token goes in a header, never in a log or a command line.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from picl.reconciler import status as st
from picl.spec import Cluster
from picl.spec.checks import duration_seconds
from picl.spec.models import Notify

log = logging.getLogger(__name__)

BAD = ("stalled", "failed", "rolled_back")
# Ready's reasons that mean a cycle failed on the nodes (the others are waits: LockHeld, ...).
FAILED_REASONS = ("ApplyFailed", "NodesUnreachable", "InternalError")


@dataclass(frozen=True)
class Mark:
    """The state the last event said: its kind, and for a stall, the revision stalled on."""

    kind: str = "unknown"  # "ok", "stalled", "failed", "rolled_back" or "unknown"
    revision: str | None = None


def state(status: st.Status) -> Mark | None:
    """What a finished cycle's status says, as events see it; None: nothing to say (a wait,
    drift in report mode, a suspension), the last mark stands."""
    if status.suspended is not None:
        return None
    if status.condition(st.STALLED).status == "True":
        return Mark("stalled", status.revision.observed)
    if status.condition(st.ROLLED_BACK).status == "True":
        return Mark("rolled_back", status.revision.attempted)
    ready = status.condition(st.READY)
    if ready.status == "True":
        return Mark("ok")
    if ready.reason in FAILED_REASONS:
        return Mark("failed")
    return None


def events(last: Mark, status: st.Status) -> tuple[list[str], Mark]:
    """The events a finished cycle's `status` brings after `last`, and the new mark."""
    found = []
    if status.cycle is not None and status.cycle.outcome == "applied":
        found.append("applied")
    now = state(status)
    if now is None or now == last:
        return found, last
    if now.kind in BAD:
        found.append(now.kind)
    elif last.kind in BAD:
        found.append("recovered")
    return found, now


def document(event: str, status: st.Status, primary: str) -> dict[str, Any]:
    """The event as JSON: what a person needs to act, the same for a command and a webhook."""
    ready = status.condition(st.READY)
    revision = status.revision.observed if event == "stalled" else status.revision.attempted
    return {
        "event": event,
        "cluster": status.cluster,
        "primary": primary,
        "branch": status.branch,
        "revision": revision,
        "reason": ready.reason,
        "message": ready.message,
        "time": status.updated,
        "nodes": {n.node: n.state for n in status.nodes},
    }


def _host(url: str) -> str:
    """A webhook as logs name it: its host (a path may hold a key, as some services do)."""
    return url.split("/")[2]


def deliver(entry: Notify, body: bytes, token: str | None) -> tuple[bool, str]:
    """Send one event to one entry: whether it went, and what happened in words. Raises
    nothing."""
    timeout = duration_seconds(entry.timeout)
    if entry.command is not None:
        try:
            done = subprocess.run(entry.command, input=body, capture_output=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return False, f"{entry.command[0]}: no answer within {entry.timeout}: stopped"
        except OSError as exc:
            return False, f"{entry.command[0]}: {exc.strerror or exc}"
        if done.returncode != 0:
            said = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            return False, f"{entry.command[0]}: exit {done.returncode} {said[0]}".rstrip()
        return True, f"{entry.command[0]}: done"
    assert entry.webhook is not None
    headers = {"Content-Type": "application/json", "User-Agent": "picl-agent"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(entry.webhook, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return True, f"{_host(entry.webhook)}: HTTP {answer.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{_host(entry.webhook)}: HTTP {exc.code}"
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return False, f"{_host(entry.webhook)}: {getattr(exc, 'reason', exc)}"


class Notifier:
    """Sends events to the spec's `[[notify]]` entries, each from a thread of its own."""

    def __init__(self, last: Mark | None = None):
        self.last = last or Mark()

    def cycle_ended(self, cluster: Cluster | None, status: st.Status) -> list[threading.Thread]:
        """Send what this cycle's end brings; returns the threads sending (tests join them)."""
        found, self.last = events(self.last, status)
        if cluster is None or not found:
            return []
        threads = []
        for event in found:
            body = json.dumps(document(event, status, socket.gethostname())).encode()
            for entry in cluster.notify:
                if event not in entry.events:
                    continue
                token = cluster.secret(entry.token) if entry.token else None
                thread = threading.Thread(target=self._send, args=(event, entry, body, token),
                                          daemon=True, name=f"notify-{event}")
                thread.start()
                threads.append(thread)
        return threads

    @staticmethod
    def _send(event: str, entry: Notify, body: bytes, token: str | None) -> None:
        sent, said = deliver(entry, body, token)
        log.log(logging.INFO if sent else logging.WARNING, "notify %s: %s", event, said)
