"""[metrics] and [[notify]] on lab nodes, end to end, with the real software.

A lab of its own with an uplink (node0 has a second interface, wlan0), the reference cluster
plus examples/metrics.toml and two notifiers: a command on node0 that keeps each event, and a
webhook served over HTTPS by a small server in the lab's own network (its certificate trusted
on node0, as a private CA would be). Applied once, the agent installed, a first push converged.
Prometheus (Debian's, installed by picl) is then asked through its HTTP API, as a dashboard
would. Every wait is bounded and asserts nothing on time.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from picl.lab import exec_argv
from tests.conftest import REPO, running_lab, session_lab_name
from tests.reconciler.test_agent_lab import Cluster, condition, lab_spec
from tests.reconciler.test_dashboard import NODE_EXPORTER_NAMES

pytestmark = pytest.mark.lab

PRIMARY = "10.1.10.240"
AGENT = f"http://{PRIMARY}:10105/metrics"
PROMETHEUS = f"http://{PRIMARY}:9090/api/v1/query"
NODES = ("node0", "node1", "node2")
HOOK_ADDRESS = "10.1.10.254"  # the lab network's own address: where `lab exec` runs
HOOK_PORT = 8443
TOKEN = "lab-token-8c1f0e"
EVENTS = "/var/lib/picl-test-events"  # on node0: what the command notifier was given
WAIT = 240.0  # a scrape (30s) after a cycle (15s), or a first converge

# An HTTPS server that keeps each POST: its Authorization header and its body, a line each.
HOOK_SERVER = r"""
import json, ssl, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
out, cert, key, address, port = sys.argv[1:6]
class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(out, "a") as f:
            f.write(json.dumps({"auth": self.headers.get("Authorization"),
                                "event": json.loads(body)}) + "\n")
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
server = HTTPServer((address, int(port)), Hook)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""


def notifiers() -> str:
    return f"""
[[notify]]
events = ["stalled", "recovered"]
command = ["/bin/sh", "-c", "cat >> {EVENTS}; echo >> {EVENTS}"]

[[notify]]
events = ["stalled", "recovered"]
webhook = "https://{HOOK_ADDRESS}:{HOOK_PORT}/picl"
token = {{ secret = "notify_token" }}
timeout = "5s"
"""


def spec(mode: str = "enforce", bad: bool = False) -> str:
    """The agent tests' lab spec, with examples/metrics.toml and this module's notifiers."""
    text = lab_spec(mode=mode) + (REPO / "examples" / "metrics.toml").read_text() + notifiers()
    return text.replace("uid = 1000", 'uid = "one"') if bad else text


class Watched(Cluster):
    """The cluster, and what is watching it: Prometheus, the notifiers' records."""

    hooks: Path

    def query(self, expression: str) -> list[dict[str, Any]]:
        """Prometheus' answer to an instant query, asked from the lab's network."""
        url = f"{PROMETHEUS}?{urllib.parse.urlencode({'query': expression})}"
        out = self.lab.exec(["curl", "-sf", "--max-time", "10", url], check=False)
        if out.returncode != 0:
            return []
        return json.loads(out.stdout)["data"]["result"]

    def per_node(self, expression: str) -> dict[str, float]:
        return {r["metric"]["node"]: float(r["value"][1]) for r in self.query(expression)}

    def until(self, what: str, done: Callable[[], Any], timeout: float = WAIT) -> Any:
        deadline = time.monotonic() + timeout
        while not (found := done()):
            if time.monotonic() > deadline:
                raise AssertionError(f"not {what} within {timeout:.0f}s")
            time.sleep(2)
        return found

    def commanded(self) -> list[str]:
        text = self.ssh("node0", f"cat {EVENTS} 2>/dev/null || true")
        return [json.loads(line)["event"] for line in text.splitlines() if line.strip()]

    def hooked(self) -> list[dict[str, Any]]:
        if not self.hooks.exists():
            return []
        return [json.loads(line) for line in self.hooks.read_text().splitlines()]


@pytest.fixture(scope="module")
def watched(lab_host: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watched]:
    root = tmp_path_factory.mktemp("metrics")
    path = root / "cluster.toml"
    path.write_text(spec())
    cert, key = root / "hook.crt", root / "hook.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=picl lab webhook", "-addext", f"subjectAltName=IP:{HOOK_ADDRESS}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    with running_lab(session_lab_name("metrics"), path, uplink=True) as lab:
        cluster = Watched(lab, root)
        cluster.hooks = root / "hooks.jsonl"
        with cluster.secrets.open("a") as secrets:
            secrets.write(f'notify_token = "{TOKEN}"\n')
        argv, env = exec_argv(lab.name, [sys.executable, "-c", HOOK_SERVER, str(cluster.hooks),
                                         str(cert), str(key), HOOK_ADDRESS, str(HOOK_PORT)])
        server = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            # node0 trusts the webhook's certificate, as it would a private CA's.
            lab.ssh("node0", "cat > /usr/local/share/ca-certificates/picl-lab-hook.crt && "
                    "update-ca-certificates >/dev/null", input=cert.read_text())
            applied = cluster.picl("apply", "--yes")
            assert applied.returncode == 0, applied.stdout + applied.stderr
            installed = cluster.picl("agent", "install")
            assert installed.returncode == 0, installed.stdout + installed.stderr
            cluster.wait("waiting for a first push",
                         lambda s: condition(s, "Ready")[1] == "NoRevision")
            cluster.applied(pushed(cluster, spec(), "the reference cluster, watched"))
            yield cluster
        finally:
            server.terminate()
            server.wait(timeout=30)


def pushed(cluster: Watched, text: str, message: str) -> str:
    sha = cluster.commit(text, message)
    cluster.push()
    return sha


def test_prometheus_scrapes_the_agent_and_every_exporter(watched: Watched) -> None:
    up = watched.until("every target up", lambda: {
        (r["metric"]["job"], r["metric"]["instance"]) for r in watched.query("up == 1")
    } >= {("picl", "node0:10105"), *(("node", f"{n}:9100") for n in NODES)} or None)
    assert up
    converged = watched.until("converged everywhere", lambda: (
        found if (found := watched.per_node("picl_node_converged")) == dict.fromkeys(NODES, 1.0)
        else None))
    assert converged == dict.fromkeys(NODES, 1.0)
    assert watched.per_node("picl_node_reachable") == dict.fromkeys(NODES, 1.0)
    assert float(watched.query("picl_ready")[0]["value"][1]) == 1
    (info,) = watched.query("picl_revision_info")
    assert info["metric"]["branch"] == "main"
    assert info["metric"]["revision"] == watched.status()["revision"]["applied"]


def test_the_dashboards_node_exporter_names_are_exported(watched: Watched) -> None:
    watched.until("node_exporter scraped", lambda: watched.query('up{job="node"} == 1'))
    missing = [name for name in sorted(NODE_EXPORTER_NAMES)
               if not watched.query(f"count({name})")]
    assert missing == []


def test_retention_and_listen_address_are_the_specs(watched: Watched) -> None:
    args = watched.ssh("node0", "cat /proc/$(systemctl show -p MainPID --value prometheus)"
                                "/cmdline | tr '\\0' ' '")
    assert "--storage.tsdb.retention.time=30d" in args
    assert "--storage.tsdb.retention.size=2GB" in args
    assert f"--web.listen-address={PRIMARY}:9090" in args


def test_the_endpoint_answers_on_the_wired_address_only(watched: Watched) -> None:
    status = watched.status()
    assert status["metrics"] == AGENT
    watched.ssh("node0", "ip addr add 10.1.99.1/24 dev eth0")
    try:
        def fetch(url: str) -> int:
            return watched.lab.ssh("node0", f"curl -sf --max-time 5 -o /dev/null {url}",
                                   check=False).returncode
        assert fetch(AGENT) == 0
        for other in ("127.0.0.1", "10.1.99.1", "192.168.50.10"):  # loopback, second, uplink
            assert fetch(AGENT.replace(PRIMARY, other)) != 0, other
        body = watched.ssh("node0", f"curl -sf --max-time 5 {AGENT}")
        assert re.search(r"^picl_ready 1\.0$", body, re.MULTILINE)
    finally:
        watched.ssh("node0", "ip addr del 10.1.99.1/24 dev eth0")


def test_drift_in_report_mode_shows_in_prometheus(watched: Watched) -> None:
    watched.applied(pushed(watched, spec(mode="report"), "report only"))
    # Inside picl's block: lines outside it are someone else's, and kept.
    watched.ssh("node1", "sed -i '/^# END picl/i 10.1.10.99 rogue' /etc/hosts")
    watched.picl("agent", "reconcile")  # exits 1: drift leaves it not ready
    drifted = watched.until("node1 drifted in Prometheus", lambda: (
        found if (found := watched.per_node("picl_node_converged")).get("node1") == 0 else None))
    assert drifted == {"node0": 1.0, "node1": 0.0, "node2": 1.0}
    assert watched.per_node("picl_node_pending_changes")["node1"] > 0
    assert watched.per_node("picl_node_pending_changes")["node0"] == 0
    watched.applied(pushed(watched, spec(), "enforce again"))
    watched.until("node1 converged again", lambda: watched.per_node(
        "picl_node_converged").get("node1") == 1)


def test_a_bad_commit_notifies_once_and_the_next_good_one_once(watched: Watched) -> None:
    before_command, before_hook = len(watched.commanded()), len(watched.hooked())
    bad = pushed(watched, spec(bad=True), "a typo")
    stalled = watched.wait("stalled", lambda s: s["revision"]["observed"] == bad
                           and s["state"] == "stalled")
    # More cycles stall on the same commit (one at each interval): still one message.
    number = stalled["cycle"]["number"]
    watched.wait("two more cycles", lambda s: s["cycle"]["number"] >= number + 2
                 and s["cycle"]["finished"] is not None)
    watched.until("stalled sent", lambda: len(watched.hooked()) > before_hook
                  and len(watched.commanded()) > before_command)
    assert watched.commanded()[before_command:] == ["stalled"]
    hooked = watched.hooked()[before_hook:]
    assert [h["event"]["event"] for h in hooked] == ["stalled"]
    assert hooked[0]["auth"] == f"Bearer {TOKEN}"
    assert hooked[0]["event"]["revision"] == bad
    assert "users[0].uid" in hooked[0]["event"]["message"]
    good = pushed(watched, spec(), "fixed")
    watched.applied(good)
    watched.until("recovered sent", lambda: len(watched.hooked()) > before_hook + 1
                  and len(watched.commanded()) > before_command + 1)
    assert watched.commanded()[before_command:] == ["stalled", "recovered"]
    assert [h["event"]["event"] for h in watched.hooked()[before_hook:]] == \
        ["stalled", "recovered"]
    # The token never reaches the journal.
    journal = watched.ssh("node0", "journalctl -u picl-agent --no-pager -o cat")
    assert "notify stalled: " in journal and TOKEN not in journal
