"""Where the agent's things live on the primary. One place, so install, agent and CLI agree.

Every path can be moved with PICL_AGENT_ROOT (tests run an agent in a temporary directory).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

UNIT_NAME = "picl-agent.service"


@dataclass(frozen=True)
class Paths:
    root: Path = Path("/")

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> Paths:
        env = os.environ if environ is None else environ
        return cls(Path(env.get("PICL_AGENT_ROOT", "/")))

    def _at(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    @property
    def repository(self) -> Path:
        """The bare repository people push to."""
        return self._at("/srv/picl/cluster.git")

    @property
    def state(self) -> Path:
        return self._at("/var/lib/picl")

    @property
    def checkout(self) -> Path:
        """The agent's working clone: the spec at the revision being tried."""
        return self.state / "checkout"

    @property
    def status(self) -> Path:
        return self.state / "status.json"

    @property
    def history(self) -> Path:
        return self.state / "history.json"

    @property
    def allowed_signers(self) -> Path:
        """The keys trusted to sign commits: those of the last accepted revision's spec."""
        return self.state / "allowed_signers"

    @property
    def upstream_known_hosts(self) -> Path:
        """The upstream's host keys, pinned at install: the only ones its SSH fetch trusts."""
        return self.state / "upstream_known_hosts"

    @property
    def control(self) -> Path:
        """Files people leave for the agent: `suspended`, `reconcile`."""
        return self.state / "control"

    @property
    def config(self) -> Path:
        return self._at("/etc/picl")

    @property
    def secrets(self) -> Path:
        return self.config / "secrets.toml"

    @property
    def key(self) -> Path:
        """The agent's SSH key: authorised for root on every node."""
        return self.config / "agent_ed25519"

    @property
    def known_hosts(self) -> Path:
        """Every node's host keys, pinned at install."""
        return self.config / "known_hosts"

    @property
    def environment(self) -> Path:
        """The agent's settings (its unit's EnvironmentFile)."""
        return self.config / "agent.env"

    @property
    def venv(self) -> Path:
        return self._at("/opt/picl/venv")

    @property
    def wheelhouse(self) -> Path:
        return self._at("/opt/picl/wheelhouse")

    @property
    def unit(self) -> Path:
        return self._at(f"/etc/systemd/system/{UNIT_NAME}")
