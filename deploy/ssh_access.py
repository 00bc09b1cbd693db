"""SSH: picl's keys in authorized_keys, the cluster key pair, pinned host keys for every node."""

from __future__ import annotations

from collections.abc import Iterator

from picl.deploy.changes import Attribute, Change, Guard, block_lines, text_diff, with_block
from picl.deploy.commands import command, put, sh
from picl.deploy.view import ClusterFacts, NodeView, home
from picl.facts.node import Observed, Reads
from picl.spec import Cluster, Node, User

KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
HOST_KEYS = "/etc/ssh/ssh_host_*_key.pub"
AUTHORIZED_KEYS = ".ssh/authorized_keys"  # in the user's home, as CLUSTER_KEY
CLUSTER_KEY = ".ssh/id_ed25519"
GENERATED_AT_APPLY = "generated at apply"


def reads(cluster: Cluster, node: Node, shared: ClusterFacts) -> Reads:
    """Each user's keys (a stock user's too: its keys become the user's), every host key."""
    users = dict.fromkeys([u.name for u in cluster.users]
                          + [u.rename_from for u in cluster.users if u.rename_from])
    return Reads(files=(KNOWN_HOSTS,), patterns=(HOST_KEYS,),
                 home_files=tuple((u, path) for u in users
                                  for path in (AUTHORIZED_KEYS, CLUSTER_KEY + ".pub")),
                 home_stats=tuple((u, CLUSTER_KEY) for u in users))


def host_keys(observed: Observed) -> list[str]:
    """The node's public host keys, one line each."""
    return [line for text in observed.matching(HOST_KEYS).values()
            for line in text.splitlines() if line.strip()]


def needs(cluster: Cluster, node: Node) -> tuple[str, ...]:
    """sshd for the keys picl installs, and the client the cluster key is used with."""
    return ("openssh-server", "openssh-client")


def _key_label(key: str) -> str:
    """How a key shows in a plan: its type and comment (or the end of its data)."""
    fields = key.split()
    return f"{fields[0]} {fields[2] if len(fields) > 2 else '…' + fields[1][-8:]}"


def authorized(view: NodeView, user: User, have: list[str]) -> list[str]:
    """Every key picl puts in the user's authorized_keys, in a stable order."""
    keys = list(user.ssh_keys)
    for name in user.github:
        keys += view.shared.github_keys.get(name, [])
    pair = view.shared.cluster_keys.get(user.name)
    if user.cluster_key and pair:
        keys.append(pair.public)
    if any(name not in view.shared.github_keys for name in user.github):
        keys += have  # a GitHub user's keys could not be resolved: remove nothing
    return list(dict.fromkeys(keys))


def _ssh_dir(user: User) -> str:
    """~/.ssh, made by its user: a symlink they left there cannot turn root's chown elsewhere."""
    made = command("install", "-d", "-m", "0700", f"{home(user)}/.ssh")
    return made if user.name == "root" else f"{command('runuser', '-u', user.name, '--')} {made}"


def _authorized_keys(view: NodeView, user: User) -> Iterator[Change]:
    accounts = view.observed.accounts
    owner = user.name
    if owner not in accounts and user.rename_from and user.rename_from in accounts:
        owner = user.rename_from  # its home becomes the user's: so do its keys
    current = view.observed.home_file(owner, AUTHORIZED_KEYS)
    have = block_lines(current)
    wanted = authorized(view, user, have or [])
    if have == wanted or (have is None and not wanted):
        return
    path = f"{home(user)}/{AUTHORIZED_KEYS}"
    yield Change(
        f"authorized_keys {user.name}",
        "create" if current is None else "update",
        (Attribute("keys", [_key_label(k) for k in have or []],
                   [_key_label(k) for k in wanted]),),
        steps=(sh(_ssh_dir(user)),
               put(path, with_block(current, wanted), user.name, user.name, "0600")),
        # The keys picl logs in with: confirmed over a new connection, or put back.
        guard=Guard(files=(path,)) if user.name == view.shared.login_user else None,
    )


def _cluster_key(view: NodeView, user: User) -> Iterator[Change]:
    if not user.cluster_key:
        return
    pair = view.shared.cluster_keys.get(user.name)
    public = view.observed.home_file(user.name, CLUSTER_KEY + ".pub")
    action = "create" if public is None else "update"
    if pair is None:
        # A plan writes no secret: apply generates the pair before it plans (deploy.keys).
        yield Change(f"cluster_key {user.name}", action,
                     (Attribute("key pair", None, GENERATED_AT_APPLY),))
        return
    private = view.observed.home_stat(user.name, CLUSTER_KEY)
    if public == pair.public and private is not None:
        return
    path = f"{home(user)}/{CLUSTER_KEY}"
    yield Change(
        f"cluster_key {user.name}",
        action,
        (Attribute("key pair", "", "", sensitive=True),),
        steps=(sh(_ssh_dir(user)),
               put(path, pair.private, user.name, user.name, "0600"),
               put(path + ".pub", pair.public, user.name, user.name, "0644")),
        sensitive=True,
    )


def known_hosts_lines(view: NodeView) -> list[str]:
    """Every node's host keys, by name, name.domain and address; kept for unreachable nodes."""
    cluster = view.cluster
    current = block_lines(view.observed.file(KNOWN_HOSTS)) or []
    lines: list[str] = []
    for node in cluster.nodes:
        names = f"{node.name},{node.name}.{cluster.cluster.domain},{node.address}"
        peer = view.shared.observed.get(node.name)
        if peer is None:
            lines += [line for line in current if line.split(" ", 1)[0] == names]
            continue
        for key in sorted(host_keys(peer)):
            key_type, blob = key.split()[:2]
            lines.append(f"{names} {key_type} {blob}")
    return lines


def _known_hosts(view: NodeView) -> Iterator[Change]:
    current = view.observed.file(KNOWN_HOSTS)
    wanted = known_hosts_lines(view)
    if block_lines(current) == wanted:
        return
    text = with_block(current, wanted)
    yield Change("known_hosts", "create" if current is None else "update",
                 diff=text_diff(KNOWN_HOSTS, current, text), steps=(put(KNOWN_HOSTS, text),))


def changes(view: NodeView) -> list[Change]:
    found: list[Change] = []
    for user in view.cluster.users:
        found += _authorized_keys(view, user)
        found += _cluster_key(view, user)
    found += _known_hosts(view)
    return found
