"""Notifications as data: which transitions send which events, and what a notifier gets."""

from __future__ import annotations

import json
import logging
import sys
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from picl.reconciler import status as st
from picl.reconciler.notify import Mark, Notifier, deliver, document, events, state
from picl.reconciler.status import NodeStatus, Result, Status
from picl.spec.models import Notify

A, B = "a" * 40, "b" * 40
T0 = 1_800_000_000.0
OK_NODES = (NodeStatus("node0", "converged"), NodeStatus("node1", "converged"))
APPLIED = (NodeStatus("node0", "converged", ("~ hosts",)), NodeStatus("node1", "converged"))
BROKEN = (NodeStatus("node0", "converged"), NodeStatus("node1", "failed", ("~ hosts",), "apt"))
DOWN = (NodeStatus("node0", "converged"), NodeStatus("node1", "unreachable", error="unreachable"))
DRIFT = (NodeStatus("node0", "converged"), NodeStatus("node1", "drifted", ("~ hosts",)))
REVERTED = (NodeStatus("node0", "converged"),
            NodeStatus("node1", "failed", ("~ network",), "not confirmed", rolled_back=True))


def began(revision: str = A) -> Status:
    return st.observed(st.began(Status(branch="main", cluster="arrakis"), "push", T0), revision,
                       attempted=True)


# How a cycle can end, each a status as the agent records it.
ENDS = {
    "unchanged": lambda: st.finished(began(), Result(A, "enforce", OK_NODES), T0, T0),
    "applied": lambda: st.finished(began(), Result(A, "enforce", APPLIED, applied=True), T0, T0),
    "apply-failed": lambda: st.finished(began(), Result(A, "enforce", BROKEN, True), T0, T0),
    "unreachable": lambda: st.finished(began(), Result(A, "enforce", DOWN), T0, T0),
    "rolled-back": lambda: st.finished(began(), Result(A, "enforce", REVERTED, True), T0, T0),
    "drifted": lambda: st.finished(began(), Result(A, "report", DRIFT), T0, T0),
    "stalled-a": lambda: st.stalled(st.observed(began(), A), "InvalidSpec", "bad", T0),
    "stalled-b": lambda: st.stalled(st.observed(began(), B), "InvalidSpec", "bad", T0),
    "lock-held": lambda: st.retrying(began(), "LockHeld", "held by bob", T0, T0),
    "upstream": lambda: st.retrying(began(), "UpstreamUnreachable", "no route", T0, T0),
    "internal": lambda: st.retrying(began(), "InternalError", "a bug", T0, T0, "failed"),
    "suspended": lambda: st.suspend(began(), "bob", T0),
    "no-commit": lambda: st.waiting_for_commits(began(), T0, T0),
}

# (the ends of successive cycles, from an agent that knew nothing, the events each sends)
SEQUENCES: list[tuple[list[str], list[list[str]]]] = [
    (["unchanged", "unchanged"], [[], []]),
    (["applied", "unchanged", "applied"], [["applied"], [], ["applied"]]),
    (["stalled-a", "stalled-a", "stalled-a"], [["stalled"], [], []]),  # a long stall: one
    (["stalled-a", "unchanged"], [["stalled"], ["recovered"]]),
    (["stalled-a", "applied"], [["stalled"], ["applied", "recovered"]]),
    (["stalled-a", "stalled-b"], [["stalled"], ["stalled"]]),  # another bad commit
    (["unchanged", "apply-failed", "apply-failed", "unchanged"],
     [[], ["failed"], [], ["recovered"]]),
    (["unreachable", "unreachable", "applied"], [["failed"], [], ["applied", "recovered"]]),
    (["internal", "unchanged"], [["failed"], ["recovered"]]),
    (["rolled-back", "rolled-back", "applied"], [["rolled_back"], [], ["applied", "recovered"]]),
    (["rolled-back", "apply-failed"], [["rolled_back"], ["failed"]]),
    (["apply-failed", "stalled-a", "unchanged"], [["failed"], ["stalled"], ["recovered"]]),
    # Waits are no news, and do not hide a recovery.
    (["lock-held", "upstream", "unchanged"], [[], [], []]),
    (["apply-failed", "lock-held", "unchanged"], [["failed"], [], ["recovered"]]),
    (["stalled-a", "suspended", "unchanged"], [["stalled"], [], ["recovered"]]),
    (["drifted", "drifted", "unchanged"], [[], [], []]),
    (["apply-failed", "drifted", "unchanged"], [["failed"], [], ["recovered"]]),
    (["no-commit", "applied"], [[], ["applied"]]),
]


@pytest.mark.parametrize(("ends", "sent"), SEQUENCES,
                         ids=[" then ".join(e) for e, _ in SEQUENCES])
def test_one_event_per_transition(ends: list[str], sent: list[list[str]]) -> None:
    mark, found = Mark(), []
    for end in ends:
        now, mark = events(mark, ENDS[end]())
        found.append(now)
    assert found == sent


def test_an_agent_restarted_while_stalled_does_not_say_it_again() -> None:
    stalled = ENDS["stalled-a"]()
    assert events(state(stalled) or Mark(), stalled)[0] == []
    assert events(state(stalled) or Mark(), ENDS["unchanged"]())[0] == ["recovered"]


def test_the_document_says_what_and_where() -> None:
    stalled = ENDS["stalled-b"]()
    doc = document("stalled", stalled, "node0")
    assert doc["event"] == "stalled" and doc["cluster"] == "arrakis"
    assert (doc["revision"], doc["reason"]) == (B, "InvalidSpec")
    assert "bad" in doc["message"]
    json.dumps(doc)


def entry(**keys: object) -> Notify:
    return Notify.model_validate(keys)


def test_a_command_gets_the_event_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "event.json"
    script = f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())"
    sent, said = deliver(entry(command=[sys.executable, "-c", script]), b'{"event": "x"}', None)
    assert sent, said
    assert json.loads(out.read_text()) == {"event": "x"}


def test_a_hanging_command_is_stopped_at_its_timeout() -> None:
    sent, said = deliver(entry(command=["sleep", "60"], timeout="1s"), b"{}", None)
    assert (sent, said) == (False, "sleep: no answer within 1s: stopped")


def test_a_failing_command_is_reported_with_its_last_word() -> None:
    sent, said = deliver(entry(command=["sh", "-c", "echo nope >&2; exit 3"]), b"{}", None)
    assert (sent, said) == (False, "sh: exit 3 nope")


def test_a_missing_command_is_reported() -> None:
    sent, said = deliver(entry(command=["/nonexistent/tell"]), b"{}", None)
    assert not sent and said.startswith("/nonexistent/tell: ")


class Hook(BaseHTTPRequestHandler):
    got: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.got.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def test_a_webhook_gets_the_token_in_a_header_and_no_log_shows_it(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"https://127.0.0.1:{server.server_port}/hook"
        hook = entry(webhook=url, token={"secret": "t"})
        # Plain HTTP to this test's server: the spec only takes https, the sending is the same.
        plain = hook.model_copy(update={"webhook": url.replace("https", "http")})
        caplog.set_level(logging.INFO)
        Hook.got.clear()
        Notifier._send("stalled", plain, b'{"event": "stalled"}', "s3cr3t-token")
        headers, body = Hook.got[0]
        assert headers["Authorization"] == "Bearer s3cr3t-token"
        assert headers["Content-Type"] == "application/json"
        assert json.loads(body) == {"event": "stalled"}
        assert "notify stalled: 127.0.0.1:" in caplog.text and "HTTP 204" in caplog.text
        assert "s3cr3t" not in caplog.text
    finally:
        server.shutdown()


def test_an_unreachable_webhook_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    hook = entry(webhook="https://127.0.0.1:9/hook", timeout="2s")
    caplog.set_level(logging.INFO)
    Notifier._send("failed", hook, b"{}", None)
    assert "notify failed: 127.0.0.1:9: " in caplog.text
    assert caplog.records[-1].levelno == logging.WARNING


def test_sending_never_waits_for_the_notifier(tmp_path: Path) -> None:
    from tests.deploy.clusters import small_cluster
    cluster = small_cluster(tmp_path, extra='\n[[notify]]\ncommand = ["sleep", "30"]\n'
                            'timeout = "30s"\n', ssid=None, psk=None)
    notifier = Notifier()
    threads = notifier.cycle_ended(cluster, ENDS["stalled-a"]())
    # Returned at once with the sender still running: the cycle goes on.
    assert [t.is_alive() for t in threads] == [True]
    assert notifier.last.kind == "stalled"


def test_only_the_entries_events_are_sent(tmp_path: Path) -> None:
    from tests.deploy.clusters import small_cluster
    out = tmp_path / "got"
    cluster = small_cluster(tmp_path, extra=f'\n[[notify]]\nevents = ["recovered"]\n'
                            f'command = ["sh", "-c", "cat >> {out}"]\n', ssid=None, psk=None)
    notifier = Notifier()
    assert notifier.cycle_ended(cluster, ENDS["stalled-a"]()) == []
    for thread in notifier.cycle_ended(cluster, ENDS["unchanged"]()):
        thread.join()
    assert json.loads(out.read_text())["event"] == "recovered"


def test_marks_are_kept_on_waits() -> None:
    failed = state(ENDS["apply-failed"]())
    assert failed == Mark("failed")
    assert state(ENDS["lock-held"]()) is None
    assert state(replace(ENDS["stalled-a"](), suspended=st.Suspension(T0))) is None
