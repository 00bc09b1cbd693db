"""`picl agent install`: make the primary the cluster's control node, from the operator's machine.

Over the operator's SSH (host keys checked), in order:
1. read the primary's platform; build a wheelhouse for it here; copy it over;
2. on the primary: picl into its own venv from the wheelhouse (no index), the bare repository
   people push to (group `picl`: the spec's personal user, who must exist, is added to it), the
   agent's SSH key, the secrets file (600);
3. the agent's key authorised for root on every node, their host keys pinned for the agent,
   and the upstream's (if any, over SSH) from the operator's own known_hosts;
4. the agent's unit, enabled on boot and (re)started.

Running it again upgrades picl in place and keeps the repository, the status and the keys.
"""

from __future__ import annotations

import io
import shlex
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from picl.deploy.commands import apt_install, replaced
from picl.errors import PiclError
from picl.operate.run import cluster_user
from picl.reconciler.client import ssh
from picl.reconciler.paths import UNIT_NAME, Paths
from picl.reconciler.source import ssh_host
from picl.reconciler.verify import UNSIGNED, allowed_signers
from picl.reconciler.wheelhouse import PROBE, Platform, build
from picl.spec import Cluster, Node
from picl.transport.connection import Connection, host_key_lines

REMOTE_TIMEOUT = 600.0  # seconds for one step on the primary (pip on an SD card is slow)
# Offline, from the wheelhouse alone. No bytecode for every module of every wheel (2137 files,
# two thirds of pip's time: 105 of 152 s on an emulated arm64 node): Python writes it for the
# modules picl imports, the first time the agent (root) starts.
PIP_OPTIONS = "--quiet --no-index --no-deps --no-compile"
# A freshly flashed primary has no git: the repository needs it. A step of its own: apt takes
# minutes there too (2 of the 4 minutes of the whole install on an emulated arm64 node).
GIT_SCRIPT = f"command -v git >/dev/null || {{ {apt_install(['git'])}; }} >&2"
# Who may push: members of this group, which owns the repository (install creates it and adds
# the spec's personal user). A push is root on every node: add only the cluster's admins.
PUSHERS = "picl"

UNIT = """\
# Written by picl agent install.
[Unit]
Description=picl agent: keeps the cluster at the state of its git branch
After=network.target ssh.service
# No network-online: a cluster carried offline converges from the local repository.

[Service]
Type=simple
EnvironmentFile={environment}
Environment=PYTHONUNBUFFERED=1
ExecStart={venv}/bin/picl agent run
Restart=always
RestartSec=3
TimeoutStopSec=30
# SIGTERM to the agent alone: it ends its cycle, its sessions and workers; the rest is killed.
KillMode=mixed

[Install]
WantedBy=multi-user.target
"""


@dataclass(frozen=True)
class Installed:
    """What the install did, for the CLI to tell."""

    primary: str
    platform: Platform
    wheels: int
    remote_url: str
    agent_key: str
    nodes: tuple[str, ...]
    secrets: bool  # the secrets file was copied


def unit(paths: Paths) -> str:
    """The agent's systemd unit."""
    return UNIT.format(environment=paths.environment, venv=paths.venv)


def environment(paths: Paths, cluster: Cluster, led_backend: str) -> str:
    """The agent's settings: how it reaches the nodes, the branch it follows, the cluster's name
    (its status says it before any push)."""
    return "".join(f"{key}={value}\n" for key, value in {
        "PICL_SSH_KEY": paths.key,
        "PICL_KNOWN_HOSTS": paths.known_hosts,
        "PICL_SSH_USER": "root",
        "PICL_AGENT_BRANCH": cluster.agent.branch,
        "PICL_LED_BACKEND": led_backend,
        "PICL_CLUSTER": cluster.cluster.name,
    }.items())


def known_hosts(cluster: Cluster, host_keys: dict[str, list[str]]) -> str:
    """known_hosts for the agent: each node's keys, by address, name and full name."""
    lines = []
    for node in cluster.nodes:
        names = f"{node.address},{node.name},{node.name}.{cluster.cluster.domain}"
        lines += [f"{names} {' '.join(key.split()[:2])}" for key in host_keys.get(node.name, [])]
    return "".join(f"{line}\n" for line in lines)


def upstream_known_hosts(upstream: str | None, files: Sequence[Path]) -> str:
    """known_hosts for the agent's upstream: its host's lines in the first of `files` that has
    them (hashed names too: `ssh-keygen -F`); "" for no upstream, or one not over SSH.

    Raises PiclError when no file has them: the upstream's key is pinned from what the
    operator already trusts, never trusted on first use.
    """
    host = ssh_host(upstream) if upstream else None
    if upstream is None or host is None:
        return ""
    for path in files:
        lines = host_key_lines(host, path)
        if lines:
            return "".join(f"{line}\n" for line in lines)
    raise PiclError(
        f"[agent].upstream {upstream}: no host key for {host} in "
        f"{', '.join(str(p) for p in files)}; the agent trusts only a key pinned now: connect "
        f"to it once from here (checking its fingerprint against the one its host publishes), "
        f"or put its line in known_hosts beside cluster.toml, then install again")


def pusher(cluster: Cluster) -> str:
    """Who pushes to the repository: the spec's personal user (the first with uid >= 1000),
    else root."""
    user = cluster_user(cluster)
    return user.name if user else "root"


def pusher_script(cluster: Cluster) -> str:
    """On the primary: whether the pusher's account is there yet (`picl apply` makes it)."""
    return f"if getent passwd {shlex.quote(pusher(cluster))} >/dev/null; then echo yes; " \
           "else echo no; fi"


def prepare_script(paths: Paths, cluster: Cluster) -> str:
    """On the primary: picl from the wheelhouse, the repository (its group the pusher's), the
    agent's key (printed)."""
    q = shlex.quote
    repo, venv, wheels = q(str(paths.repository)), q(str(paths.venv)), q(str(paths.wheelhouse))
    key = q(str(paths.key))
    return "\n".join([
        "set -eu",
        f"install -d -m 0755 {q(str(paths.config))} {q(str(paths.state))} "
        f"{q(str(paths.repository.parent))}",
        f"[ -x {venv}/bin/python ] || python3 -m venv --without-pip {venv}",
        # pip runs from its own wheel: no ensurepip (python3-venv) needed on the node.
        f"pip=$(ls {wheels}/pip-*.whl | head -n1)/pip",
        f"{venv}/bin/python \"$pip\" install {PIP_OPTIONS} --upgrade {wheels}/*.whl",
        f"{venv}/bin/python \"$pip\" install {PIP_OPTIONS} --force-reinstall "
        f"{wheels}/picl-*.whl",
        f"ln -sfn {venv}/bin/picl /usr/local/bin/picl",
        f"if [ ! -f {repo}/HEAD ]; then git init --quiet --bare "
        f"--initial-branch={q(cluster.agent.branch)} {repo}; fi",
        f"git -C {repo} config core.sharedRepository group",
        f"getent group {PUSHERS} >/dev/null || groupadd --system {PUSHERS}",
        f"usermod -a -G {PUSHERS} {q(pusher(cluster))}",
        f"chgrp -R {PUSHERS} {repo} && chmod -R g+rwX {repo} && "
        f"find {repo} -type d -exec chmod g+s {{}} +",
        f"git config --system --get-all safe.directory | grep -qxF {repo} || "
        f"git config --system --add safe.directory {repo}",
        f"[ -f {key} ] || ssh-keygen -q -t ed25519 -N '' "
        f"-C {q(f'picl-agent@{cluster.cluster.name}')} -f {key}",
        anchor_script(paths, cluster),
        f"cat {key}.pub",
    ])


def anchor_script(paths: Paths, cluster: Cluster) -> str:
    """On the primary: the trust anchor for signed commits, the spec's signed_by, unless the
    agent has one (moved since only by accepted commits); again when lost, empty or keyless."""
    q = shlex.quote
    signers, path = allowed_signers(list(cluster.agent.signed_by)), q(str(paths.allowed_signers))
    return (f"grep -qs '^[^#[:space:]]' {path} || grep -qsxF {q(UNSIGNED)} {path} || "
            f"{{ printf %s {q(signers)} | {replaced(str(paths.allowed_signers))}; }}")


def start_script(paths: Paths, cluster: Cluster, led_backend: str) -> str:
    """On the primary: the agent's settings and unit; enabled on boot and (re)started."""
    q = shlex.quote
    return "\n".join([
        "set -eu",
        f"printf %s {q(environment(paths, cluster, led_backend))} | "
        f"{replaced(str(paths.environment))}",
        f"printf %s {q(unit(paths))} | {replaced(str(paths.unit))}",
        "systemctl daemon-reload",
        f"systemctl enable --quiet {UNIT_NAME}",
        f"systemctl restart {UNIT_NAME}",
        f"systemctl is-active --quiet {UNIT_NAME}",
    ])


def authorize_script(key: str) -> str:
    """On a node: the agent's key in root's authorized_keys (once), then its host keys."""
    q = shlex.quote(key)
    keys = "/root/.ssh/authorized_keys"
    return (f"umask 077; mkdir -p /root/.ssh && "
            f"{{ grep -qxF {q} {keys} 2>/dev/null || "
            f"{{ cat {keys} 2>/dev/null; printf '%s\\n' {q}; }} | {replaced(keys, '0600')}; }} && "
            "cat /etc/ssh/ssh_host_*_key.pub")


def _tar(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in sorted(directory.glob("*.whl")):
            archive.add(path, arcname=path.name)
    return buffer.getvalue()


def install(cluster: Cluster, connection: Connection, secrets_file: Path | None,
            led_backend: str = "blinkt", paths: Paths | None = None,
            progress: Callable[[str], None] = lambda message: None,
            pip_network: Path | None = None, spec_dir: Path | None = None) -> Installed:
    """Install (or upgrade) the agent on the spec's primary; see the module's docstring.

    `pip_network`: the network namespace to download wheels in, when this one has no uplink.
    `spec_dir`: where cluster.toml is, whose `known_hosts` pins the upstream's host key first
    (then the files `connection` trusts).
    """
    paths = paths or Paths()
    primary = cluster.primary
    name = primary.name
    user, system = connection.known_hosts_files()
    pinned = upstream_known_hosts(cluster.agent.upstream, [
        *([spec_dir / "known_hosts"] if spec_dir else []), *user, *system])

    def on(script: str, what: str, data: bytes | None = None, node: Node = primary) -> str:
        return ssh(connection, node, script, what, data, REMOTE_TIMEOUT)

    platform = Platform.parse(on(PROBE, "reading its platform"))
    if on(pusher_script(cluster), "looking for the user who pushes").strip() != "yes":
        raise PiclError(f"{name} has no user {pusher(cluster)} yet (the spec's personal user, "
                        "who pushes to the agent): `picl apply` first, then install the agent")
    progress(f"{name}: {platform}; building the wheelhouse for it here")
    with tempfile.TemporaryDirectory(prefix="picl-wheelhouse-") as tmp:
        wheels = build(platform, Path(tmp), pip_network)
        progress(f"{name}: copying {len(wheels)} wheels")
        target = shlex.quote(str(paths.wheelhouse))
        on(f"rm -rf {target}.new && mkdir -p {target}.new && tar -x -C {target}.new "
           f"&& rm -rf {target} && mv {target}.new {target}", "copying the wheelhouse",
           data=_tar(Path(tmp)))
    progress(f"{name}: installing git, if missing")
    on(GIT_SCRIPT, "installing git")
    progress(f"{name}: installing picl (offline), the repository, the agent's key")
    agent_key = on(prepare_script(paths, cluster), "installing").strip().splitlines()[-1]
    copied = bool(secrets_file and secrets_file.is_file())
    if copied and secrets_file is not None:
        on(replaced(str(paths.secrets), "0600"), "copying the secrets",
           data=secrets_file.read_bytes())
    progress(f"authorising the agent's key on {len(cluster.nodes)} nodes, pinning host keys")
    host_keys = {
        node.name: [line for line in on(authorize_script(agent_key),
                                        "authorising the agent's key", node=node).splitlines()
                    if line.strip()]
        for node in cluster.nodes
    }
    on(replaced(str(paths.known_hosts)), "pinning host keys",
       data=known_hosts(cluster, host_keys).encode())
    on(replaced(str(paths.upstream_known_hosts)), "pinning the upstream's host key",
       data=pinned.encode())
    progress(f"{name}: starting {UNIT_NAME}")
    on(start_script(paths, cluster, led_backend), "starting the agent")
    return Installed(
        primary=name,
        platform=platform,
        wheels=len(wheels),
        remote_url=f"ssh://{pusher(cluster)}@{cluster.primary.address}{paths.repository}",
        agent_key=agent_key,
        nodes=tuple(n.name for n in cluster.nodes),
        secrets=copied,
    )
