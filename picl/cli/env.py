"""What a command runs with: the spec's paths, the lab switch, and where output goes.

An object so that tests (and the agent) can build one without a terminal.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from picl.errors import PiclError

if TYPE_CHECKING:  # rich loads when a command first prints, not with `picl --help`
    from rich.console import Console

    from picl.spec import Cluster, Node


def console(stderr: bool = False) -> Console:
    """A console as picl prints: no highlighting, no emoji codes (":100:" in a message or a
    file's diff is text, not a picture), long lines left whole."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True, emoji=False)


@dataclass
class Env:
    spec_path: Path
    secrets_path: Path | None = None
    lab: bool = False
    verbose: bool = False
    out: Console = field(default_factory=console)
    err: Console = field(default_factory=lambda: console(stderr=True))
    warnings: list[str] = field(default_factory=list)  # every warning given, in order

    @classmethod
    def from_options(cls, spec: str | None, secrets: str | None, lab: bool, verbose: bool) -> Env:
        spec_path = Path(spec or os.environ.get("PICL_SPEC") or "cluster.toml")
        secrets_value = secrets or os.environ.get("PICL_SECRETS")
        return cls(
            spec_path=spec_path,
            secrets_path=Path(secrets_value) if secrets_value else None,
            lab=lab,
            verbose=verbose,
        )

    @property
    def secrets_file(self) -> Path:
        """Where the secrets are: --secrets, else secrets.toml beside the spec."""
        from picl.spec import SECRETS_FILE

        return self.secrets_path or self.spec_path.resolve().parent / SECRETS_FILE

    # What a command reads of the spec is only what it uses: a spec broken elsewhere, or no
    # secrets.toml, stops no command that does not need them.

    @cached_property
    def cluster(self) -> Cluster:
        """The validated spec with its secrets (plan, apply); raises SpecError listing every
        problem."""
        from picl.spec import load

        return load(self.spec_path, self.secrets_path, warn=self.warn)

    @cached_property
    def spec(self) -> Cluster:
        """The validated spec, secrets.toml left unread: for commands that use no secret."""
        from picl.spec import load

        return load(self.spec_path, with_secrets=False)

    @cached_property
    def primary(self) -> Node:
        """The spec's primary node, read without validating the rest of the spec: where the
        agent is. Inside a lab, a spec too broken to say falls back to the lab's record."""
        from picl.spec import Node, primary_node

        try:
            return primary_node(self.spec_path)
        except PiclError:
            lab = os.environ.get("PICL_IN_LAB")
            from picl.lab import Blueprint

            built = Blueprint.load(lab) if lab else None
            if built is None or not built.primary:
                raise
            node = built.node(built.primary)
            return Node.model_validate({"name": node.name, "address": node.address})

    def lab_name(self, name: str | None = None) -> str:
        """The lab a command means: `name`, $PICL_LAB_NAME, or the one of this spec's cluster."""
        from picl.lab import lab_of

        return lab_of(self.spec_path, name)

    def warn(self, message: str) -> None:
        """A warning, on stderr; kept, for a --json document to list too."""
        from rich.markup import escape

        self.warnings.append(message)
        self.err.print(f"[yellow]warning:[/] {escape(message)}", markup=True)


def person() -> str:
    """Who runs this command: the person behind sudo, else the user."""
    try:
        return os.environ.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
