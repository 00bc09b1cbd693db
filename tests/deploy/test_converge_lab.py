"""plan and apply on lab nodes: real systemd, sshd and files. One apply converges the lab;
then each drift is made by hand on one node, planned (exactly that node, resource and
attribute), repaired, and planned again (empty)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from picl.deploy.keys import public_key
from picl.reconciler.leds.drivers import terminal_pixel
from tests.conftest import SPEC, Lab, running_lab, session_lab_name
from tests.deploy.reference import FOREIGN_KEY, GITHUB_KEY, MOTD, Cluster
from tests.spec.conftest import KEY

pytestmark = pytest.mark.lab

@pytest.fixture(scope="module")
def converge_lab(lab_host: None) -> Iterator[Lab]:
    """A lab of its own: these tests change its nodes, others expect fresh ones."""
    with running_lab(session_lab_name("converge")) as running:
        yield running


@pytest.fixture(scope="module")
def cluster(converge_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The lab as the field notes' boards start: the stock user, foreign lines and keys."""
    lab = converge_lab
    spec = Cluster(lab, tmp_path_factory.mktemp("converge"))
    for node in ("node0", "node1", "node2"):
        lab.ssh(node, "id picocluster || useradd -m -u 1000 -s /bin/bash picocluster")
        lab.ssh(node, "echo data > ~picocluster/results.txt && touch ~picocluster/.Xauthority")
        lab.ssh(node, "echo '192.0.2.7 printer' >> /etc/hosts")
        lab.ssh(node, f"install -d -o picocluster ~picocluster/.ssh && "
                      f"echo '{FOREIGN_KEY}' > ~picocluster/.ssh/authorized_keys")
    first = spec.picl("apply", "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    yield spec


def test_after_apply_the_plan_is_empty(cluster: Cluster) -> None:
    result = cluster.picl("plan", "--detailed-exitcode")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes" in result.stdout


def test_a_second_apply_changes_nothing(cluster: Cluster) -> None:
    result = cluster.picl("apply", "--yes")
    assert result.returncode == 0, result.stderr
    assert "No changes" in result.stdout and "converged" not in result.stdout


def test_warnings_go_to_stderr_and_into_the_json_alike(cluster: Cluster) -> None:
    keys = cluster.root / "github" / "flucifredi.keys"
    keys.rename(keys.with_suffix(".gone"))  # unreachable: the cache stands in, with a warning
    try:
        for command in (("plan", "--json"), ("apply", "--yes", "--json")):
            result = cluster.picl(*command)
            assert result.returncode == 0, result.stderr
            warned = [line.removeprefix("warning: ") for line in result.stderr.splitlines()
                      if line.startswith("warning: ")]
            assert warned == json.loads(result.stdout)["warnings"]
            assert any(w.startswith("gh:flucifredi: cannot fetch keys") for w in warned)
    finally:
        keys.with_suffix(".gone").rename(keys)


def test_stock_user_was_adopted_with_its_files(cluster: Cluster) -> None:
    lab = cluster.lab
    assert lab.ssh("node1", "id -u federico; id -g federico").stdout.split() == ["1000", "1000"]
    assert lab.ssh("node1", "cat /home/federico/results.txt").stdout == "data\n"
    assert lab.ssh("node1", "test -e /home/federico/.Xauthority", check=False).returncode == 1
    assert lab.ssh("node1", "id picocluster", check=False).returncode != 0
    groups = lab.ssh("node1", "id -nG federico").stdout.split()
    assert {"sudo", "adm", "video", "gpio"} <= set(groups)


def test_foreign_lines_and_keys_survive(cluster: Cluster) -> None:
    lab = cluster.lab
    assert "192.0.2.7 printer" in lab.ssh("node2", "cat /etc/hosts").stdout
    keys = lab.ssh("node2", "cat /home/federico/.ssh/authorized_keys").stdout
    assert FOREIGN_KEY in keys and KEY.split()[1] in keys and GITHUB_KEY in keys


def test_nodes_reach_each_other_by_name_with_the_cluster_key(cluster: Cluster) -> None:
    out = cluster.lab.ssh(
        "node1", "su - federico -c 'ssh -o BatchMode=yes node2.cluster hostname'").stdout
    assert out.strip() == "node2"


def test_sudo_and_root_password(cluster: Cluster) -> None:
    lab = cluster.lab
    assert lab.ssh("node0", "su - federico -c 'sudo -n true' && echo ok").stdout.strip() == "ok"
    assert lab.ssh("node0", "getent shadow root | cut -d: -f2").stdout.startswith("$6$pytest$")


def test_secrets_never_reach_the_plan(cluster: Cluster) -> None:
    cluster.lab.ssh("node2", "usermod -p '*' root")
    result = cluster.picl("plan")
    assert "(sensitive)" in result.stdout
    hashed = cluster.secrets.read_text()
    assert "$6$pytest$" not in result.stdout + result.stderr
    assert "BEGIN OPENSSH PRIVATE KEY" in hashed  # the cluster key went to the secrets store
    assert "OPENSSH PRIVATE" not in result.stdout + result.stderr
    assert cluster.picl("apply", "--yes").returncode == 0


def _folder(path: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (stat.S_IMODE(p.stat().st_mode), p.read_bytes()) for p in path.iterdir()}


def test_plan_writes_no_secret_and_apply_generates_the_missing_key(
        cluster: Cluster, tmp_path: Path) -> None:
    spec = tmp_path / "cluster.toml"
    spec.write_text(cluster.spec.read_text())
    secrets = tmp_path / "secrets.toml"
    stored = tomllib.loads(cluster.secrets.read_text())
    for text in (None, f'wifi_psk = "{stored["wifi_psk"]}"\n'
                       f'root_password_hash = "{stored["root_password_hash"]}"\n'):
        if text is not None:  # without a secrets file, then with one that lacks the key
            secrets.write_text(text)
            secrets.chmod(0o600)
        before = _folder(tmp_path)
        plan = cluster.picl("plan", spec=spec)
        assert plan.returncode == 0, plan.stdout + plan.stderr
        assert _folder(tmp_path) == before
        assert "cluster_key federico" in plan.stdout and "generated at apply" in plan.stdout
        assert f"the cluster key of federico is not in {secrets}: apply generates it" \
            in plan.stderr
    applied = cluster.picl("apply", "--yes", spec=spec)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "generated the cluster key of federico" in applied.stderr
    assert secrets.read_text().startswith(text) and stat.S_IMODE(secrets.stat().st_mode) == 0o600
    private = tomllib.loads(secrets.read_text())["cluster_key_federico"]
    assert private != stored["cluster_key_federico"]
    node_key = cluster.lab.ssh("node2", "cat /home/federico/.ssh/id_ed25519.pub").stdout
    assert node_key.split()[:2] == public_key(private).split()[:2]
    after = cluster.picl("plan", "--detailed-exitcode", spec=spec)
    assert after.returncode == 0 and "No changes" in after.stdout, after.stdout + after.stderr
    restored = cluster.picl("apply", "--yes")  # the module's own key again
    assert restored.returncode == 0, restored.stdout + restored.stderr


# Started on a node before an apply: every command line any process there had while it ran.
SAMPLER = """\
import os, sys
log, stop = sys.argv[1], sys.argv[2]
me, seen = str(os.getpid()), set()
with open(log, "w") as out:
    while not os.path.exists(stop):
        for pid in os.listdir("/proc"):
            if pid.isdigit() and pid != me:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        words = f.read()
                except OSError:
                    continue
                if words not in seen:
                    seen.add(words)
                    out.write(words.replace(b"\\0", b" ").decode(errors="replace") + "\\n")
                    out.flush()
"""


def _sampled(lab: Lab, node: str, during) -> str:
    """Every command line seen on `node` in a tight loop over /proc while `during()` runs."""
    lab.ssh(node, f"cat > /tmp/sampler.py <<'EOF'\n{SAMPLER}EOF\nrm -f /tmp/argv.*; "
                  "setsid python3 /tmp/sampler.py /tmp/argv.log /tmp/argv.stop "
                  "</dev/null >/dev/null 2>&1 &")
    lab.ssh(node, "for _ in $(seq 100); do [ -s /tmp/argv.log ] && break; sleep 0.1; done")
    try:
        during()
    finally:
        lab.ssh(node, "touch /tmp/argv.stop; for _ in $(seq 100); do "
                      "pgrep -f /tmp/sampler.py >/dev/null || break; sleep 0.1; done")
    return lab.ssh(node, "cat /tmp/argv.log").stdout


def test_secrets_never_in_a_process_s_arguments(cluster: Cluster) -> None:
    lab = cluster.lab
    lab.ssh("node1", "usermod -p '*' root; rm -f /home/federico/.ssh/id_ed25519* "
                     "/etc/NetworkManager/system-connections/picl-wifi.nmconnection")
    stored = tomllib.loads(cluster.secrets.read_text())
    private = stored["cluster_key_federico"].splitlines()[1]
    applied = []

    def apply() -> None:
        # A control: a command as short-lived as the old `usermod -p HASH` is seen.
        lab.ssh("node1", "usermod -p picl-sampler-probe nosuchuser", check=False)
        applied.append(cluster.picl("apply", "--yes"))

    seen = _sampled(lab, "node1", apply)
    result = applied[0]
    assert result.returncode == 0, result.stdout + result.stderr
    for resource in ("password root", "cluster_key federico", "network picl-wifi.nmconnection"):
        assert resource in result.stdout
    assert "usermod -p picl-sampler-probe" in seen
    for name, secret in [("root password hash", stored["root_password_hash"]),
                         ("Wi-Fi key", stored["wifi_psk"]), ("cluster key", private)]:
        assert secret not in seen, f"the {name} was in a command line on node1"


# A user still running something (a systemd --user left by `su -`) cannot be changed.
LOGGED_OUT = ("loginctl terminate-user federico 2>/dev/null; for _ in $(seq 40); do "
              "pgrep -u federico >/dev/null || break; sleep 0.5; done; ")

# (id, node, command that makes the drift, expected (resource, attribute or diff text))
DRIFTS = [
    ("user-deleted", "node1", LOGGED_OUT + "userdel -r federico 2>/dev/null; true",
     {"user federico", "group federico", "authorized_keys federico", "cluster_key federico"},
     None),
    ("uid-changed", "node2", LOGGED_OUT + "usermod -u 1005 federico", {"user federico"}, "uid"),
    ("hosts-block-edited", "node0", "sed -i '/^# END picl/i 10.1.10.9 intruder' /etc/hosts",
     {"hosts"}, "-10.1.10.9 intruder"),
    ("key-removed", "node1",
     "sed -i '/federico@laptop/d' /home/federico/.ssh/authorized_keys",
     {"authorized_keys federico"}, "keys"),
    ("target-changed", "node2", "systemctl set-default graphical.target", {"target"}, "default"),
    ("time-not-served", "node0", "sed -i '/^allow /d' /etc/chrony/chrony.conf",
     {"chrony"}, "+allow 10.1.10.0/24"),
    ("package-removed", "node2", "dpkg -r htop >/dev/null", {"package htop"}, None),
    ("file-edited", "node1", "echo tampered >> /etc/motd", {"file /etc/motd"}, "-tampered"),
    ("file-mode", "node1", "chmod 0600 /etc/motd", {"file /etc/motd"}, "mode"),
    ("exports-changed", "node0", "sed -i 's/root_squash/no_root_squash/g' "
     "/etc/exports.d/picl.exports", {"exports"}, "+/srv/shared"),
]


@pytest.mark.parametrize(("node", "drift", "resources", "detail"),
                         [d[1:] for d in DRIFTS], ids=[d[0] for d in DRIFTS])
def test_drift_is_planned_exactly_and_repaired(cluster: Cluster, node: str, drift: str,
                                               resources: set[str], detail: str | None) -> None:
    cluster.lab.ssh(node, drift)
    plan = cluster.plan()
    changed = {(n["node"], c["resource"]) for n in plan["nodes"] for c in n["changes"]}
    assert changed == {(node, r) for r in resources}
    if detail:
        (change,) = [c for n in plan["nodes"] for c in n["changes"]]
        names = [a["name"] for a in change["attributes"]]
        diff = change["diff"].splitlines()
        assert detail in names or any(line.startswith(detail) for line in diff), change
    repaired = cluster.picl("apply", "--yes")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert cluster.changed() == set()


def test_a_node_pinned_only_in_the_system_known_hosts_plans_and_applies(
        cluster: Cluster, tmp_path: Path) -> None:
    """Plan (OpenSSH) and apply (paramiko) check host keys against the same files: a node
    trusted only by the system's known_hosts (here a copy of the lab's, in its place) is
    reached by both, and with no file trusting it, by neither."""
    from picl.lab import exec_argv
    from picl.lab.ssh import known_hosts_path

    lab = cluster.lab
    system = tmp_path / "ssh_known_hosts"
    system.write_text(known_hosts_path(lab.blueprint).read_text())
    (tmp_path / "mine").write_text("")  # the user's own file trusts nothing
    # Shared connections of their own: one opened before would skip the host key check.
    control = Path(tempfile.mkdtemp(prefix="picl-"))

    def run(trusted_by: Path, *args: str) -> subprocess.CompletedProcess[str]:
        argv, env = exec_argv(lab.name, [
            sys.executable, "-c", "from picl.cli import main; main()", "--lab",
            "--spec", str(cluster.spec), "--secrets", str(cluster.secrets), *args])
        env.update(cluster.environ, PICL_KNOWN_HOSTS=str(tmp_path / "mine"),
                   PICL_GLOBAL_KNOWN_HOSTS=str(trusted_by), PICL_SSH_CONTROL=str(control))
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)

    lab.ssh("node1", "echo tampered >> /etc/motd")
    try:
        refused = run(Path("/dev/null"), "plan", "--node", "node1")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "Host key verification failed" in refused.stdout + refused.stderr
        planned = run(system, "plan", "--node", "node1", "--detailed-exitcode")
        assert planned.returncode == 2, planned.stdout + planned.stderr
        assert "file /etc/motd" in planned.stdout
        applied = run(system, "apply", "--node", "node1", "--yes")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "node1: converged" in applied.stdout
    finally:
        for socket in control.iterdir():
            subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "node"],
                           capture_output=True, check=False)
        shutil.rmtree(control, ignore_errors=True)
    assert lab.ssh("node1", "cat /etc/motd").stdout == MOTD


def test_unreachable_node_fails_alone(cluster: Cluster) -> None:
    lab = cluster.lab
    for node in ("node0", "node1"):
        lab.ssh(node, "echo tampered >> /etc/motd")
    kill = lab.picl("lab", "kill", "node2")
    assert kill.returncode == 0, kill.stderr
    try:
        result = cluster.picl("apply", "--yes")
        assert result.returncode == 1
        assert "node2" in result.stdout and "unreachable" in result.stdout
        assert "node0: converged" in result.stdout and "node1: converged" in result.stdout
    finally:
        assert lab.picl("lab", "start", "node2").returncode == 0
        lab.wait_ssh("node2")
    assert cluster.changed() == set()


def test_node_killed_mid_apply_is_reported_and_the_others_converge(cluster: Cluster) -> None:
    lab = cluster.lab
    for node in ("node0", "node1", "node2"):
        lab.ssh(node, "dpkg -r htop >/dev/null")
    env = {**os.environ, **cluster.environ, "PICL_SPEC": str(cluster.spec),
           "PICL_LAB_NAME": lab.name}
    apply = subprocess.Popen(
        [sys.executable, "-c", "from picl.cli import main; main()",
         "--secrets", str(cluster.secrets), "--lab", "apply", "--yes"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert apply.stdout is not None
    lines = []
    for line in apply.stdout:  # the plan is printed before any node is touched
        lines.append(line)
        if line.startswith("Plan:"):
            break
    try:
        assert lab.picl("lab", "kill", "node2").returncode == 0
        out, err = apply.communicate(timeout=300)
        report = "".join(lines) + out
        assert apply.returncode == 1, report + err
        assert "node2: FAILED" in report
        assert "node0: converged" in report and "node1: converged" in report
    finally:
        assert lab.picl("lab", "start", "node2").returncode == 0
        lab.wait_ssh("node2")
    assert cluster.picl("apply", "--yes").returncode == 0
    assert cluster.changed() == set()


# Pixels as the terminal draws them at the spec's brightness, as bright as they look on a strip.
BRIGHTNESS = tomllib.loads(SPEC.read_text())["leds"]["brightness"]
GREEN = terminal_pixel((0, 255, 0, BRIGHTNESS))
RED = terminal_pixel((255, 0, 0, BRIGHTNESS))
DARK = "\x1b[38;2;60;60;60m░░"


def _journal_until(lab: Lab, node: str, predicate, what: str) -> str:
    for _ in range(60):  # bounded wait, about 30 s: the service redraws 8 times a second
        # Only the strip's frames: systemd's own lines about the unit are in the journal too.
        lines = lab.ssh(node, "journalctl -u picl-leds -o cat --no-pager | grep -E '░|█' "
                              "| tail -n 3").stdout
        if predicate(lines.splitlines()):
            return lines
        time.sleep(0.5)
    raise AssertionError(f"{node}: the LED service never showed {what}:\n{lines}")


def test_led_service_follows_the_state_and_clears_on_stop(cluster: Cluster) -> None:
    lab = cluster.lab
    assert lab.ssh("node1", "systemctl is-active picl-leds").stdout.strip() == "active"
    lab.ssh("node1", "mkdir -p /run/picl && echo '{\"state\": \"converged\"}' > /run/picl/leds.json")
    _journal_until(lab, "node1", lambda lines: lines and lines[-1].count(GREEN) == 8,
                   "converged (eight steady green pixels)")
    lab.ssh("node1", "systemctl stop picl-leds")
    try:
        _journal_until(lab, "node1", lambda lines: lines and lines[-1].count(DARK) == 8,
                       "a cleared strip after stop")
    finally:
        lab.ssh("node1", "systemctl start picl-leds")


def test_leds_follow_the_agents_record_and_run_on_a_node(cluster: Cluster) -> None:
    lab = cluster.lab
    lab.ssh("node0", "mkdir -p /run/picl && echo '{\"state\": \"converged\"}' > /run/picl/leds.json")
    followed = cluster.picl("leds", "show", "--backend", "terminal", "--frames", "2")
    assert followed.returncode == 0, followed.stderr
    assert GREEN * 1 in followed.stdout and followed.stdout.splitlines()[0].count(GREEN) == 8
    shown = cluster.picl("leds", "show", "failed", "--node", "node2", "--backend", "terminal",
                         "--frames", "1")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0].count(RED) == 8
    cleared = cluster.picl("leds", "clear", "--node", "node1", "--backend", "terminal")
    assert cleared.returncode == 0 and cleared.stdout.splitlines()[-1].count(DARK) == 8
