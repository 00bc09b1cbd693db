"""`picl agent run`: the agent on the primary. Only wiring: triggers in, one cycle at a time.

The first cycle runs at start-up (after a boot too), from the local repository: no uplink is
waited for. Then a cycle runs on a push, on `picl agent reconcile`, when a node comes back,
after a failure (with backoff) and at the interval (with jitter), whichever comes first; what
arrives during a cycle is gathered into the next one. While suspended, it only keeps the
status and the LEDs saying so.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import FrameType

from picl.reconciler import control, notify
from picl.reconciler import status as st
from picl.reconciler.loop import Reconciler, Settings
from picl.reconciler.metrics import Endpoint, Metrics
from picl.reconciler.notify import Notifier
from picl.reconciler.paths import Paths
from picl.reconciler.triggers import NodeWatcher, Triggers, watch_files
from picl.spec import Cluster
from picl.spec.models import INTERVAL_SECONDS, METRICS_PORT
from picl.transport.connection import Connection

log = logging.getLogger(__name__)

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
# The agent's shared SSH connections outlive the longest interval: a cycle reads, applies and
# paints over the connections the last one opened (a handshake costs a Pi 3 more than the
# plan). A node that goes away ends its own, by the keepalives.
PERSIST = INTERVAL_SECONDS[1] + 60


class Stopping(BaseException):
    """SIGTERM or SIGINT arrived during a cycle: end it, record it, leave."""


def run(paths: Paths, connection: Connection, settings: Settings,
        stop: threading.Event | None = None) -> None:
    """Run the agent until SIGTERM/SIGINT (or `stop` is set)."""
    stop = stop or threading.Event()
    connection = replace(connection, persist=PERSIST)
    triggers = Triggers()
    reconciler = Reconciler(paths, connection, settings)
    watcher = NodeWatcher(triggers, connection)

    def watch(cluster: Cluster) -> None:
        watcher.watch((n.name, str(n.address)) for n in cluster.nodes
                      if n.name != cluster.primary.name)

    metrics = Metrics(lambda: reconciler.status)
    endpoint = Endpoint(metrics)
    notifier = Notifier(notify.state(reconciler.status))

    def accepted(cluster: Cluster) -> None:
        watch(cluster)
        port = cluster.metrics.port if cluster.metrics else METRICS_PORT
        where = endpoint.serve(str(cluster.primary.address), port)
        if where != reconciler.status.metrics:
            reconciler.record(replace(reconciler.status, metrics=where))

    def cycle_ended(status: st.Status) -> None:
        if status.cycle is not None:
            metrics.cycle_ended(status.cycle)
        notifier.cycle_ended(reconciler.cluster, status)

    reconciler.on_accept = accepted
    reconciler.on_cycle = cycle_ended
    in_cycle = threading.Event()
    agent_pid = os.getpid()

    def on_signal(number: int, frame: FrameType | None) -> None:
        if os.getpid() != agent_pid:
            # A forked plan/apply worker inherited this handler: it just dies, as it would have.
            signal.signal(number, signal.SIG_DFL)
            os.kill(os.getpid(), number)
            return
        stop.set()
        triggers.put("stop")
        if in_cycle.is_set():
            raise Stopping(signal.Signals(number).name)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    observer = watch_files(paths.repository, paths.control, triggers)
    log.info("agent started: %s, branch %s", paths.repository, settings.branch)
    pending = {reconciler.started(_boot_id())}
    due = time.monotonic()
    try:
        while not stop.is_set():
            held = control.suspension(paths.control)
            if held is not None:
                if reconciler.status.suspended is None:
                    reconciler.suspend(held[0])
                # Awake only to keep the LEDs' word fresh; what arrives waits for resume.
                woken = triggers.take(reconciler.interval)
                pending |= woken - {"control", "stop"}
                if not woken:
                    reconciler.show()
                continue
            if reconciler.status.suspended is not None:
                reconciler.resume()
                pending.add("resumed")
            if not pending:
                pending = triggers.take(max(0.0, due - time.monotonic())) - {"control"}
                if stop.is_set():
                    break
                if not pending and time.monotonic() < due:
                    continue  # a control file changed: look at it again
                pending = pending or {"retry" if reconciler.failures else "interval"}
            if control.take_reconcile_request(paths.control):
                pending.add("requested")
            trigger = ", ".join(sorted(pending))
            pending = set()
            in_cycle.set()
            try:
                delay = reconciler.reconcile(trigger)
            except Stopping:
                break
            finally:
                in_cycle.clear()
            due = time.monotonic() + delay
    finally:
        stop.set()
        observer.stop()
        watcher.close()
        endpoint.close()
        log.info("agent stopped")


def _boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""
