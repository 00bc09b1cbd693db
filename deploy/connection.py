"""How picl reaches nodes over SSH: one set of settings for pyinfra and for plain ssh.

Host keys are always checked. The lab (and the agent on the primary) say which key and
known_hosts to use through the environment, so every command works unchanged against both.

Reading a node's state goes over a shared connection (ControlMaster) that outlives the command
for a minute: a plan, then the apply after it, cost one SSH handshake per node, not two. Other
commands do not share one: a shared connection holds a command's output open after picl gives up
on it, where a command of its own can be stopped with its ssh.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONTROL_PERSIST = 60  # seconds an idle shared connection stays open (as Ansible's default)
# A shared connection to a node that lost power is given up after 3 unanswered 5 s probes.
ALIVE = ("-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3")
# sun_path holds 107 bytes; ssh binds `DIR/<%C: 40 hex digits>.<16 random>` and renames it.
SOCKET_DIR_MAX = 107 - 1 - 40 - 17


def control_dir(environ: Mapping[str, str]) -> Path | None:
    """Where shared connections' sockets live: $PICL_SSH_CONTROL, else a private runtime dir."""
    runtime = environ.get("XDG_RUNTIME_DIR")
    default = (Path(runtime) if runtime else Path.home() / ".cache") / "picl" / "ssh"
    path = Path(environ.get("PICL_SSH_CONTROL") or default)
    return path if len(str(path)) <= SOCKET_DIR_MAX else None  # else: not shared


def private_dir(path: Path) -> bool:
    """Make `path` (mode 700) or check it is ours alone: others must not reach our sockets."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
    except OSError:
        return False
    return info.st_uid == os.getuid() and not info.st_mode & 0o077


@dataclass(frozen=True)
class Connection:
    user: str = "root"
    key: Path | None = None
    known_hosts: Path | None = None
    connect_timeout: int = 10
    control: Path | None = None  # directory of shared connections' sockets; None: not shared

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> Connection:
        env = os.environ if environ is None else environ
        key = env.get("PICL_SSH_KEY")
        known_hosts = env.get("PICL_KNOWN_HOSTS")
        return cls(
            user=env.get("PICL_SSH_USER", "root"),
            key=Path(key) if key else None,
            known_hosts=Path(known_hosts) if known_hosts else None,
            control=control_dir(env),
        )

    def ssh_options(self, shared: bool = False) -> list[str]:
        """OpenSSH options: batch mode (never prompt), strict host keys, bounded connect; if
        `shared`, the node's shared connection where there is a private place for its socket."""
        options = [
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"ConnectTimeout={self.connect_timeout}",
            "-o", "LogLevel=ERROR",
            *ALIVE,
        ]  # fmt: skip
        if shared and self.control and private_dir(self.control):
            options += ["-o", "ControlMaster=auto", "-o", f"ControlPath={self.control}/%C",
                        "-o", f"ControlPersist={CONTROL_PERSIST}"]
        if self.known_hosts:
            options += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.key:
            options += ["-i", str(self.key), "-o", "IdentitiesOnly=yes"]
        return options

    def ssh_argv(
        self, address: str, command: list[str] | str | None = None, shared: bool = False
    ) -> list[str]:
        """`ssh ... user@address -- command` (a list is quoted for the remote shell)."""
        argv = ["ssh", *self.ssh_options(shared), f"{self.user}@{address}"]
        if command is None:
            return argv
        remote = command if isinstance(command, str) else shlex.join(command)
        return [*argv, "--", remote]

    def pyinfra_data(self) -> dict[str, Any]:
        """Host data for pyinfra's SSH connector."""
        timeout = self.connect_timeout
        data: dict[str, Any] = {
            "ssh_user": self.user,
            "ssh_strict_host_key_checking": "yes",
            "ssh_connect_retries": 0,
            "ssh_paramiko_connect_kwargs": {
                "timeout": timeout, "banner_timeout": timeout, "auth_timeout": timeout,
            },
        }
        if self.known_hosts:
            data["ssh_known_hosts_file"] = str(self.known_hosts)
        if self.key:
            # The given key only: an agent's or ~/.ssh's keys would make runs differ by who runs.
            data.update(ssh_key=str(self.key), ssh_allow_agent=False, ssh_look_for_keys=False)
        return data
