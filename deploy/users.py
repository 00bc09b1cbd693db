"""Users and groups: the same uid/gid on every node, groups, shell, sudo, root's password."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

from picl.deploy.changes import Attribute, Change, attributes
from picl.deploy.commands import command, piped, put, sh
from picl.deploy.view import ClusterFacts, NodeView, home
from picl.facts.node import Reads
from picl.spec import Cluster, Node, User

SUDOERS_DIR = "/etc/sudoers.d"
# What /etc/shadow holds as a password: a crypt(3) hash, or `!`/`*` for no password.
CRYPT_HASH = re.compile(r"[!-9;-~]+")


def sudoers_line(user: User) -> str | None:
    if user.sudo == "nopasswd":
        return f"{user.name} ALL=(ALL:ALL) NOPASSWD: ALL\n"
    if user.sudo == "password":
        return f"{user.name} ALL=(ALL:ALL) ALL\n"
    return None


def sudoers(user: User) -> str:
    return f"{SUDOERS_DIR}/picl-{user.name}"


def reads(cluster: Cluster, node: Node, shared: ClusterFacts) -> Reads:
    """Each user's sudoers drop-in, and the digest of the password hash the spec sets."""
    return Reads(files=tuple(sudoers(u) for u in cluster.users),
                 passwords=tuple(u.name for u in cluster.users if u.password is not None))


def needs(cluster: Cluster, node: Node) -> tuple[str, ...]:
    """sudo, when a user is given it (its sudoers.d file is checked by visudo)."""
    return ("sudo",) if any(sudoers_line(u) for u in cluster.users) else ()


def _groups(view: NodeView) -> Iterator[Change]:
    """Supplementary groups the spec names that the node lacks (gpio on a non-Pi image)."""
    wanted = sorted({g for u in view.cluster.users for g in u.groups})
    own = {u.name for u in view.cluster.users}
    for group in wanted:
        if group not in view.observed.groups and group not in own:
            yield Change(f"group {group}", "create", steps=(sh(command("groupadd", "--system",
                                                                        group)),))


def _primary_group(view: NodeView, user: User) -> Iterator[Change]:
    observed = view.observed.groups.get(user.name)
    old = view.observed.groups.get(user.rename_from) if user.rename_from else None
    gid = str(user.primary_gid)
    if observed is None and old is not None and user.name not in view.observed.accounts:
        return  # renamed with the user below
    if observed is None:
        yield Change(f"group {user.name}", "create",
                     (Attribute("gid", None, user.primary_gid),),
                     steps=(sh(command("groupadd", "-g", gid, user.name)),))
    elif observed.gid != user.primary_gid:
        yield Change(f"group {user.name}", "update",
                     (Attribute("gid", observed.gid, user.primary_gid),),
                     steps=(sh(command("groupmod", "-g", gid, user.name)),))


def _account(view: NodeView, user: User) -> Iterator[Change]:
    accounts = view.observed.accounts
    account = accounts.get(user.name)
    name, uid, gid, path = user.name, str(user.uid), str(user.primary_gid), home(user)
    steps = []
    if account is None and user.rename_from and user.rename_from in accounts:
        # Adopt the image's stock user: its files stay, under the new name and ids.
        stock = accounts[user.rename_from]
        steps.append(command("usermod", "-l", name, "-d", path, "-m", user.rename_from))
        if user.rename_from in view.observed.groups:
            steps.append(command("groupmod", "-n", name, user.rename_from))
        steps.append(f"rm -f {command(path + '/.Xauthority')}")
        attrs = [Attribute("renamed from", None, user.rename_from)]
        account_before = {"uid": stock.uid, "gid": stock.gid, "shell": stock.shell}
        action = "create"
    elif account is None:
        steps.append(command("useradd", "-m", "-d", path, "-u", uid, "-g", gid,
                             "-s", user.shell, name))
        attrs = []
        account_before = {}
        action = "create"
    else:
        attrs = []
        account_before = {"uid": account.uid, "gid": account.gid, "shell": account.shell}
        action = "update"
    after = {"uid": user.uid, "gid": user.primary_gid, "shell": user.shell}
    changed = attributes(account_before, after)
    if account_before:
        if account_before["gid"] != user.primary_gid:
            if user.rename_from and account is None:
                steps.append(command("groupmod", "-g", gid, name))
            steps.append(command("usermod", "-g", gid, name))
            # Files keep their old group id until told: fix the home's ownership.
            steps.append(command("chown", "-R", f"--from=:{account_before['gid']}",
                                 f":{gid}", path))
        if account_before["uid"] != user.uid:
            steps.append(command("usermod", "-u", uid, name))  # also fixes the home's files
        if account_before["shell"] != user.shell:
            steps.append(command("usermod", "-s", user.shell, name))
    missing = sorted(set(user.groups) - view.observed.supplementary_groups(name))
    if account is None and user.rename_from in accounts:
        missing = sorted(set(user.groups) - view.observed.supplementary_groups(user.rename_from))
    if missing:
        have = sorted(set(user.groups) - set(missing))
        changed += (Attribute("groups", have, sorted(user.groups)),)
        steps.append(command("usermod", "-a", "-G", ",".join(missing), name))
    if action == "create" or changed:
        yield Change(f"user {name}", action, (*attrs, *changed), steps=(sh(*steps),))


def _sudo(view: NodeView, user: User) -> Iterator[Change]:
    path = sudoers(user)
    want = sudoers_line(user)
    have = view.observed.file(path)
    if want == have:
        return
    if want is None:
        yield Change(f"sudo {user.name}", "remove", steps=(sh(command("rm", "-f", path)),))
        return
    # sudo ignores names with a dot, as the temporary file's: visudo checks it before it counts.
    yield Change(f"sudo {user.name}", "create" if have is None else "update",
                 (Attribute("sudo", _sudo_mode(have), user.sudo),),
                 steps=(put(path, want, mode="0440", check="visudo -cqf"),))


def _sudo_mode(line: str | None) -> str:
    if not line:
        return "none"
    return "nopasswd" if "NOPASSWD" in line else "password"


def _password(view: NodeView, user: User) -> Iterator[Change]:
    if user.password is None:
        return
    wanted = view.cluster.secret(user.password)
    if wanted is None:
        return  # no secrets file: the plan says so once, in its warnings
    digest = hashlib.sha256((wanted + "\n").encode()).hexdigest()
    if digest == view.observed.password_digests.get(user.name):
        return
    resource = f"password {user.name}"
    if not CRYPT_HASH.fullmatch(wanted):
        # chpasswd reads `user:hash` lines: a ':' or a newline would set someone else's.
        yield Change(resource, "update", blocked=f"secret {user.password.secret!r} is not a "
                     "crypt(3) hash (printable ASCII, no ':' or space); the value is not shown")
        return
    yield Change(resource, "update", (Attribute("password", "", "", sensitive=True),),
                 steps=(piped("chpasswd -e", f"{user.name}:{wanted}\n"),), sensitive=True)


def changes(view: NodeView) -> list[Change]:
    found = list(_groups(view))
    for user in view.cluster.users:
        if user.name != "root":
            found += _primary_group(view, user)
            found += _account(view, user)
        found += _sudo(view, user)
        found += _password(view, user)
    return found
