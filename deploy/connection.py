"""How picl reaches nodes over SSH: one set of settings for pyinfra and for plain ssh.

Host keys are always checked. The lab (and the agent on the primary) say which key and
known_hosts to use through the environment, so every command works unchanged against both.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Connection:
    user: str = "root"
    key: Path | None = None
    known_hosts: Path | None = None
    connect_timeout: int = 10

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> Connection:
        env = os.environ if environ is None else environ
        key = env.get("PICL_SSH_KEY")
        known_hosts = env.get("PICL_KNOWN_HOSTS")
        return cls(
            user=env.get("PICL_SSH_USER", "root"),
            key=Path(key) if key else None,
            known_hosts=Path(known_hosts) if known_hosts else None,
        )

    def ssh_options(self) -> list[str]:
        """OpenSSH options: batch mode (never prompt), strict host keys, bounded connect."""
        options = [
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"ConnectTimeout={self.connect_timeout}",
            "-o", "LogLevel=ERROR",
        ]  # fmt: skip
        if self.known_hosts:
            options += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.key:
            options += ["-i", str(self.key), "-o", "IdentitiesOnly=yes"]
        return options

    def ssh_argv(self, address: str, command: list[str] | str | None = None) -> list[str]:
        """`ssh ... user@address -- command` (a list is quoted for the remote shell)."""
        argv = ["ssh", *self.ssh_options(), f"{self.user}@{address}"]
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
