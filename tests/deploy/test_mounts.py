"""The fstab concern as data: a node's fstab bytes in, the change (diff, transaction, guard) out."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from picl.deploy import mounts
from picl.deploy.plan import plan_node
from picl.spec import Cluster
from tests.deploy.clusters import small_cluster
from tests.deploy.conftest import fresh_node, view

NFS = "rw,_netdev,nofail,x-systemd.automount,x-systemd.mount-timeout=30s"
SHARED = ("# picl: managed by picl (cluster.toml [[shares]] shared); edit the spec, not this line\n"
          f"10.1.10.240:/srv/shared /shared nfs {NFS} 0 0\n")
SCRATCH = ("# picl: managed by picl (cluster.toml [[mounts]] /scratch); edit the spec, not this line\n"
           "LABEL=scratch /scratch ext4 defaults,nofail 0 0\n")
STOCK = b"proc /proc proc defaults 0 0\nPARTUUID=4e639091-02 / ext4 defaults,noatime 0 1\n"


@pytest.fixture
def spec(tmp_path: Path) -> Cluster:
    return small_cluster(tmp_path)


def node_changes(cluster: Cluster, node: str, fstab: bytes | None) -> dict:
    observed = fresh_node(node)
    if fstab is not None:
        observed.files[mounts.FSTAB] = fstab
    return {c.resource: c for c in mounts.changes(view(cluster, node, observed))}


def test_new_entries_are_one_transaction_showing_the_lines_added(spec: Cluster) -> None:
    change = node_changes(spec, "node1", STOCK)["fstab"]
    assert change.action == "update"
    added = [line[1:] for line in change.diff.splitlines() if line.startswith("+") and
             not line.startswith("+++")]
    assert "\n".join(added) + "\n" == SHARED + SCRATCH
    assert [(a.name, a.before, a.after) for a in change.attributes] == [
        ("mounts", [], ["/shared", "/scratch"])]
    (step,) = change.steps
    assert step.operation is mounts.fstab_transaction
    assert step.arguments == {
        "data": STOCK + (SHARED + SCRATCH).encode(),
        "before": hashlib.sha256(STOCK).hexdigest(),
        "unmount": [],
        "mount": ["/shared", "/scratch"],
    }


def test_the_server_does_not_mount_its_own_share(spec: Cluster) -> None:
    assert node_changes(spec, "node0", STOCK) == {}
    assert node_changes(spec, "node0", None) == {}  # no fstab, nothing wanted: nothing to do


def test_a_node_that_has_its_entries_has_no_change(spec: Cluster) -> None:
    assert node_changes(spec, "node1", STOCK + (SHARED + SCRATCH).encode()) == {}


def test_removal_and_update_unmount_before_the_file_changes(tmp_path: Path) -> None:
    spec = small_cluster(tmp_path, extra="")
    old = SHARED.replace("rw,", "ro,").encode()
    stale = (b"# picl: managed by picl (cluster.toml [[mounts]] /old); edit the spec, not this line\n"
             b"tmpfs /old tmpfs defaults 0 0\n")
    change = node_changes(spec, "node2", STOCK + old + stale)["fstab"]
    arguments = change.steps[0].arguments
    assert arguments["unmount"] == ["/old", "/shared"]
    assert arguments["mount"] == ["/shared"]
    assert "-tmpfs /old tmpfs defaults 0 0" in change.diff.splitlines()


def test_a_foreign_line_for_a_wanted_mount_point_blocks_it_and_is_kept(spec: Cluster) -> None:
    foreign = b"//nas/share /shared cifs guest 0 0\n"
    found = node_changes(spec, "node1", STOCK + foreign)
    blocked = found["mount /shared"]
    assert "//nas/share /shared cifs guest 0 0" in blocked.blocked
    assert blocked.steps == ()
    # The other entry is still added; the foreign line stays as it is.
    data = found["fstab"].steps[0].arguments["data"]
    assert data == STOCK + foreign + SCRATCH.encode()


def test_bytes_that_are_not_utf8_are_written_back_and_shown_replaced(spec: Cluster) -> None:
    current = b"# caf\xe9\n" + STOCK
    change = node_changes(spec, "node1", current)["fstab"]
    assert change.steps[0].arguments["data"].startswith(current)
    assert " # caf\ufffd" in change.diff.splitlines()


def test_the_guard_puts_back_the_file_and_undoes_the_mounts(spec: Cluster) -> None:
    guard = node_changes(spec, "node1", STOCK)["fstab"].guard
    assert guard.files == ("/etc/fstab",)
    assert "systemctl daemon-reload" in guard.restore
    assert guard.restore[-2:] == ("unmount_point /shared", "unmount_point /scratch")


def test_the_transaction_command_carries_its_inputs_quoted() -> None:
    _, upload, command = mounts.fstab_transaction._inner(
        data=b"a b password=x\n", before="absent", unmount=["/old"], mount=["/new", "/two"])
    assert upload.src.getvalue() == b"a b password=x\n"
    text = str(command)
    assert "password" not in text  # the content never in a command's arguments
    assert text.startswith("F=/etc/fstab\nB=/var/backups/picl\nKEEP=5\nMOUNT_TIMEOUT=30\n"
                           f"DATA={upload.dest}\nBEFORE=absent\nUNMOUNT=/old\nMOUNT='/new /two'\n")
    # The order the issue asks for: verify, back up, unmount, replace, reload, mount.
    steps = ["verify \"$NEW\" new", 'cp -p "$F" "$B/fstab.1"', 'unmount_point "$t"',
             'replace "$NEW"', "systemctl daemon-reload", ' mount_point "$t"']
    body = text.index("have=absent")  # the functions above run only when called from here
    positions = [text.index(step, body) for step in steps]
    assert positions == sorted(positions)


def test_fstab_changes_come_after_the_rest_of_the_node(
        spec: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # where the spec's managed files are
    node = spec.node("node1")
    observed = fresh_node()
    observed.files[mounts.FSTAB] = STOCK
    plan = plan_node(spec, node, observed, view(spec, "node1", observed).shared)
    resources = [c.resource for c in plan.changes]
    assert resources.index("hosts") < resources.index("fstab")
    assert plan.counts["update"] >= 1


def test_a_credential_in_fstab_is_shown_nowhere(spec: Cluster, tmp_path: Path) -> None:
    """Plan text, plan JSON, the node's error at apply, the agent's status and history."""
    import io
    import json

    from rich.console import Console

    from picl.cli.converge import plan_document, show_node
    from picl.cli.env import Env
    from picl.deploy.changes import NodePlan
    from picl.deploy.converge import NodeFailure, Outcome, converge_node
    from picl.deploy.plan import Plan
    from picl.reconciler import status as st
    from picl.reconciler.loop import applied_states, plan_states
    from picl.reconciler.paths import Paths
    from picl.reconciler.store import Store

    secret = "hunter2"
    blocking = f"//nas/shared /shared cifs username=bob,password={secret} 0 0\n".encode()
    around = f"//nas/media /mnt/media cifs pass={secret},ro 0 0\n".encode()  # diff context
    found = node_changes(spec, "node1", STOCK + around + blocking)
    plan = Plan([NodePlan("node1", list(found.values()))])
    assert found["mount /shared"].blocked and found["fstab"].diff  # both paths taken

    shown = [json.dumps(plan_document(plan, []))]
    out = io.StringIO()
    show_node(Env(spec_path=tmp_path / "cluster.toml", out=Console(file=out, width=200)),
              plan.nodes[0])
    shown.append(out.getvalue())
    with pytest.raises(NodeFailure) as failed:
        converge_node(spec.node("node1"), NodePlan("node1", [found["mount /shared"]]),
                      connection=None)  # type: ignore[arg-type]
    shown.append(str(failed.value))
    nodes = applied_states(plan_states(plan, "enforce"),
                           {"node1": Outcome("node1", ok=False, error=str(failed.value))})
    store = Store(Paths(tmp_path))
    status = st.began(st.Status(branch="main"), "push", 1.8e9)
    store.save(st.finished(status, st.Result("a" * 40, "enforce", nodes, applied=True),
                           1.8e9 + 1, 1.8e9 + 300))
    shown += [store.paths.status.read_text(), store.paths.history.read_text()]

    assert "password=(sensitive)" in shown[0] and "pass=(sensitive)" in shown[1]
    assert "password=(sensitive)" in shown[2] and "password=(sensitive)" in shown[3]
    assert [secret in text for text in shown] == [False] * len(shown)


@pytest.mark.parametrize(("said", "expected"), [
    ("mount error(13): Permission denied for //bob:hunter2@nas/shared",
     "mount error(13): Permission denied for //bob:(sensitive)@nas/shared"),
    ("findmnt: /shared: unparsable options username=bob,password=hunter2",
     "findmnt: /shared: unparsable options username=bob,password=(sensitive)"),
    ("mount: /shared: can't find in /etc/fstab.", "mount: /shared: can't find in /etc/fstab."),
])
def test_the_transaction_s_errors_are_shown_with_credentials_hidden(
    spec: Cluster, said: str, expected: str
) -> None:
    """findmnt and mount name a line's source in their errors; the failure picl prints (and
    sends back to the node as why it reverted) hides what the plan's diff hides."""
    from picl.deploy.changes import Step
    from picl.deploy.converge import failure

    blocking = b"//nas/shared /srv cifs username=bob,password=hunter2 0 0\n"
    steps = [s for c in node_changes(spec, "node1", STOCK + blocking).values() for s in c.steps]
    assert failure(steps, said) == expected
    assert failure([Step(print)], said) == said  # a step that shows its errors as they are


def test_a_plan_reads_the_file_once(spec: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    from picl.deploy.fstab import Fstab

    parsed: list[object] = []
    real = Fstab.parse.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Fstab, "parse", classmethod(lambda cls, text: parsed.append(text)
                                                    or real(cls, text)))
    change = node_changes(spec, "node1", STOCK)["fstab"]
    assert change.attributes[0].after == ["/shared", "/scratch"]
    assert len(parsed) == 1
