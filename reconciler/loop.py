"""One reconcile: fetch -> verify -> load -> plan -> apply (or report) -> record.

Each step returns its result or raises a typed error (`picl.reconciler.errors`); `reconcile`
always records the status, in a `finally`, and says when the next cycle is due. The converge
lock is the one manual `picl apply` takes: one converge at a time, whoever starts it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from picl.deploy.lock import LockHeld, converging
from picl.errors import PiclError, SpecError
from picl.reconciler import status as st
from picl.reconciler import strips
from picl.reconciler.errors import ReconcileError, Stalled, Waiting
from picl.reconciler.paths import Paths
from picl.reconciler.schedule import backoff, clock_is_sane, next_interval
from picl.reconciler.source import Source, fast_forward
from picl.reconciler.store import Store, replace_file
from picl.reconciler.verify import allowed_signers, trusted_keys, verify
from picl.spec import Cluster, load
from picl.transport.connection import Connection

if TYPE_CHECKING:  # pyinfra loads with the first plan, not with `picl status`
    from picl.deploy.converge import Outcome
    from picl.deploy.plan import Plan

log = logging.getLogger(__name__)

SPEC_FILE = "cluster.toml"
DEFAULT_INTERVAL = 300.0  # until a spec says otherwise
SYMBOL = {"create": "+", "update": "~", "remove": "-"}


@dataclass(frozen=True)
class Settings:
    """How this agent was installed (its unit's environment)."""

    branch: str = "main"
    led_backend: str = "blinkt"
    ssh_command: str = "ssh"  # for the upstream
    cluster: str = ""  # the name of the cluster it was installed for, until a spec says


class Reconciler:
    """The agent's memory between cycles: its status, the last accepted spec, its source."""

    def __init__(self, paths: Paths, connection: Connection, settings: Settings,
                 clock: Callable[[], float] = time.time,
                 draw: Callable[[], float] = random.random):
        self.paths = paths
        self.connection = connection
        self.settings = settings
        self.clock = clock
        self.draw = draw
        self.store = Store(paths)
        stored = self.store.status()
        self.status = replace(stored, branch=settings.branch,
                              cluster=stored.cluster or settings.cluster)
        self.last_seen = self.status.updated or None  # the agent's last word before this start
        self.upstream_error = ""
        self.source = Source(paths.repository, paths.checkout, settings.branch,
                             settings.ssh_command)
        self.cluster: Cluster | None = None  # the last spec that loaded
        self.failures = 0  # transient failures in a row
        self.boot_ids: dict[str, str] = {}  # node -> boot id, as the LED writes last saw it
        self.on_accept: Callable[[Cluster], None] = lambda cluster: None
        # After each cycle is recorded: its metrics counted, its events notified.
        self.on_cycle: Callable[[st.Status], None] = lambda status: None
        self.painter: strips.Painter | None = None  # started with the first record shown

    # -- recording ---------------------------------------------------------------------------

    @property
    def interval(self) -> float:
        return float(self.cluster.agent.interval_seconds) if self.cluster else DEFAULT_INTERVAL

    def record(self, status: st.Status, leds: bool = False) -> None:
        """Keep `status` (on disk, atomically); with `leds`, show it on the nodes' strips."""
        self.status = status
        self.store.save(status)
        if leds and self.cluster is not None:
            self.show()

    def show(self) -> None:
        """Write every node's LED record; notes the nodes that rebooted since the last look."""
        cluster = self.cluster
        if cluster is None:
            return
        names = [n.name for n in cluster.nodes]
        expires = self.clock() + 2.5 * self.interval + 60
        if any(n.state == "applying" for n in self.status.nodes):
            expires = self.clock() + 1800  # an apply may take as long as apt does
        chosen = strips.records(self.status, names, cluster.primary.name, expires)
        if self.painter is None:
            self.painter = strips.Painter(self.connection, self._seen)
            self.painter.start()
        self.painter.paint(cluster, chosen)

    def _seen(self, boots: dict[str, str]) -> None:
        for name in strips.rebooted(self.boot_ids, boots):
            log.info("%s: rebooted since the agent last looked", name)
        self.boot_ids.update(boots)

    def started(self, boot_id: str) -> str:
        """The agent (re)started: close a cycle a crash left open; the first cycle's trigger:
        "install" (never ran before), "boot" (first since a boot) or "start"."""
        now = self.clock()
        status = self.status
        if status.cycle and status.cycle.finished is None:
            status = st.retrying(status, "Interrupted", "the agent stopped during a cycle", now,
                                 now, outcome="interrupted")
        never_started = not status.agent_boot and status.cycle is None
        first_since_boot = status.agent_boot != boot_id
        self.record(replace(status, agent_boot=boot_id))
        self._remember()
        if never_started:
            return "install"
        return "boot" if first_since_boot else "start"

    def _remember(self) -> None:
        """The spec of the revision last tried, when it loads: the nodes, before any cycle."""
        if not (self.paths.checkout / SPEC_FILE).is_file():
            return
        try:
            self.cluster = load(self.paths.checkout / SPEC_FILE, self.paths.secrets,
                                warn=lambda message: None)
        except PiclError:
            return
        self.on_accept(self.cluster)

    def suspend(self, by: str) -> None:
        if self.status.suspended is None:
            log.info("suspended by %s", by or "someone")
        self.record(st.suspend(self.status, by, self.clock()), leds=True)

    def resume(self) -> None:
        log.info("resumed")
        self.record(st.resume(self.status, self.clock()))

    # -- the cycle ---------------------------------------------------------------------------

    def reconcile(self, trigger: str) -> float:
        """Run one cycle and record how it ended; returns the seconds until the next one."""
        started = self.clock()
        self.record(st.began(self.status, trigger, started))
        log.info("cycle %d (%s)", self.status.cycle.number if self.status.cycle else 0, trigger)
        result: st.Result | None = None
        error: BaseException | None = None
        try:
            result = self._steps()
        except BaseException as exc:
            error = exc
            if not isinstance(exc, Exception):
                raise  # stopping: the finally below still records it
        finally:
            delay = self._conclude(result, error)
            self.on_cycle(self.status)
        return delay

    def _conclude(self, result: st.Result | None, error: BaseException | None) -> float:
        now = self.clock()
        status = self.status
        if isinstance(error, Stalled):
            self.failures = 0
            log.warning("stalled: %s: %s", error.reason, error.message)
            self.record(st.stalled(status, error.reason, error.message, now), leds=True)
            return self.interval  # a new commit wakes it sooner (a push)
        if error is not None:
            self.failures += 1
            delay = backoff(self.failures, self.interval, self.draw())
            if isinstance(error, ReconcileError):
                reason, message = error.reason, error.message
                log.warning("%s: %s; retrying in %.0fs", reason, message, delay)
            elif isinstance(error, Exception):
                reason, message = "InternalError", f"{type(error).__name__}: {error}"
                log.error("cycle failed (a bug in picl); retrying in %.0fs", delay,
                          exc_info=error)
            else:
                reason, message = "Interrupted", "the agent was stopped during the cycle"
            outcome = "failed" if reason == "InternalError" else \
                "interrupted" if reason == "Interrupted" else "retrying"
            self.record(st.retrying(status, reason, message, now, now + delay, outcome),
                        leds=True)
            return delay
        if result is None:
            delay = next_interval(self.interval, self.draw())
            self.record(st.waiting_for_commits(status, now, now + delay))
            return delay
        if result.broken or self.upstream_error:
            self.failures += 1
            delay = backoff(self.failures, self.interval, self.draw())
        else:
            self.failures = 0
            delay = next_interval(self.interval, self.draw())
        status = st.finished(status, result, now, now + delay)
        if self.upstream_error and not result.broken:
            status = st.upstream_left_out(status, self.upstream_error, now)
        log.info("%s", status.condition(st.READY).message)
        self.record(status, leds=True)
        return delay

    def _steps(self) -> st.Result | None:
        clock_sane = clock_is_sane(self.clock(), self.last_seen)
        upstream = self.cluster.agent.upstream if self.cluster else None
        # A TLS upstream cannot be checked with a wrong clock: the local repository will do.
        fetched = self.source.fetch(upstream if clock_sane else None)
        self.upstream_error = fetched.upstream_error
        revision = fetched.revision
        if revision is None:
            if fetched.upstream_error:  # nothing here, and the upstream not heard: try again
                raise Waiting("UpstreamUnreachable", fetched.upstream_error)
            return None
        self.record(st.observed(self.status, revision.sha))
        previous = self.source.attempted()
        fast_forward(previous, revision.sha, self.source.is_ancestor)
        if revision.sha != previous:
            self._verify(revision.sha, clock_sane)
            self.source.mark_attempted(revision.sha)
            log.info("new revision %s: %s (%s)", st.short(revision.sha, self.settings.branch),
                     revision.subject, revision.author)
        self.record(st.observed(self.status, revision.sha, attempted=True))
        cluster = self._load(self.source.check_out(revision.sha))
        self._accept(cluster)
        if cluster.agent.upstream != upstream:
            self.upstream_error = ""  # about an upstream this revision no longer has
        return self._converge(cluster, revision.sha)

    def _verify(self, sha: str, clock_sane: bool) -> None:
        if trusted_keys(self.paths.allowed_signers) is None:  # raises when the file is lost
            return
        if not clock_sane:
            raise Waiting("ClockNotSet", "the clock is not set yet: a new revision's signature "
                          "is checked once it is (the revision last tried still converges)")
        said = verify(self.paths.checkout, sha, self.paths.allowed_signers)
        log.info("%s: %s", sha[:12], said)

    def _load(self, spec_dir: Path) -> Cluster:
        warnings: list[str] = []
        try:
            cluster = load(spec_dir / SPEC_FILE, self.paths.secrets, warn=warnings.append)
        except SpecError as exc:
            problems = [str(p).replace(f"{spec_dir}/", "") for p in exc.problems]
            raise Stalled("InvalidSpec", "; ".join(problems)) from None
        except PiclError as exc:
            raise Stalled("InvalidSpec", str(exc).replace(f"{spec_dir}/", "")) from None
        for warning in warnings:
            log.warning("%s", warning)
        if cluster.agent.branch != self.settings.branch:
            log.warning("the spec's [agent].branch is %s but this agent follows %s: run "
                        "`picl agent install` again to follow it", cluster.agent.branch,
                        self.settings.branch)
        return cluster

    def _accept(self, cluster: Cluster) -> None:
        """A revision that loads becomes the trusted one: its signers check the next."""
        replace_file(self.paths.allowed_signers, allowed_signers(list(cluster.agent.signed_by)))
        self.cluster = cluster
        self.status = replace(self.status, cluster=cluster.cluster.name,
                              mode=cluster.agent.mode)
        self.on_accept(cluster)

    def _converge(self, cluster: Cluster, sha: str) -> st.Result:
        from picl.deploy.converge import Target, apply_plan, generate_secrets, make_plan

        target = Target(cluster=cluster, connection=self.connection,
                        secrets_file=self.paths.secrets, spec_dir=self.paths.checkout,
                        led_service=strips.service_files(cluster, self.settings.led_backend))
        cycle = self.status.cycle
        what = f"the agent's cycle {cycle.number} ({cycle.trigger})" if cycle else "the agent"
        with ExitStack() as held:
            # Never waits: a person's apply may sit at its prompt; the retry is the wait.
            try:
                held.enter_context(converging(cluster.cluster.name, what,
                                              st.short(sha, self.settings.branch)))
            except LockHeld as exc:
                raise Waiting("LockHeld", str(exc)) from None
            except PiclError as exc:
                raise Waiting("LockRefused", str(exc)) from None
            started = time.monotonic()
            mode = cluster.agent.mode
            if mode == "enforce":  # report mode changes nothing, not even the secrets file
                try:
                    for note in generate_secrets(target):
                        log.info("%s", note)
                except PiclError as exc:
                    raise Waiting("SecretsNotWritten", str(exc)) from None
            plan = make_plan(target)
            for warning in plan.warnings:
                log.warning("%s", warning)
            nodes = plan_states(plan, mode)
            log.info("planned in %.1fs: %d changes on %d nodes", time.monotonic() - started,
                     plan.changes, len([n for n in plan.nodes if n.changes]))
            if mode == "report" or not any(n.state == "applying" for n in nodes):
                return st.Result(sha, mode, nodes)
            self.record(st.applying(self.status, nodes, self.clock()), leds=True)
            started = time.monotonic()
            outcomes = {o.node: o for o in apply_plan(target, plan)}
            log.info("applied in %.1fs", time.monotonic() - started)
            return st.Result(sha, mode, applied_states(nodes, outcomes), applied=True)


def plan_states(plan: Plan, mode: str) -> tuple[st.NodeStatus, ...]:
    """Each node's state from the plan: converged, drifted (report) or applying (enforce),
    with its sensors as the plan's read found them."""
    nodes = []
    for node in plan.nodes:
        changes = tuple(f"{SYMBOL[c.action]} {c.resource}" for c in node.changes)
        temperature, throttled = plan.sensors.get(node.node, (None, None))
        if node.error:
            kind = "unreachable" if node.error.startswith("unreachable") else "failed"
            nodes.append(st.NodeStatus(node.node, kind, error=node.error))
        elif changes:
            nodes.append(st.NodeStatus(node.node, "drifted" if mode == "report" else "applying",
                                       changes, temperature=temperature, throttled=throttled))
        else:
            nodes.append(st.NodeStatus(node.node, "converged", temperature=temperature,
                                       throttled=throttled))
    return tuple(nodes)


def applied_states(nodes: tuple[st.NodeStatus, ...],
                   outcomes: dict[str, Outcome]) -> tuple[st.NodeStatus, ...]:
    """The states after apply: each applying node converged or failed, by its outcome."""
    done = []
    for node in nodes:
        if node.state != "applying":
            done.append(node)
            continue
        outcome = outcomes.get(node.node)
        if outcome is not None and outcome.ok:
            done.append(replace(node, state="converged"))
        else:
            error = (outcome.error if outcome else "") or "no outcome from its apply"
            rolled_back = outcome is not None and outcome.rolled_back
            done.append(replace(node, state="failed", error=error, rolled_back=rolled_back))
    return tuple(done)
