"""`picl secrets`: the secrets picl makes itself, generated on request (apply does it too)."""

from __future__ import annotations

import click

from picl.cli.env import Env
from picl.exit import ExitStatus


@click.group()
def secrets() -> None:
    """The secrets file: secrets.toml beside the spec (or --secrets), mode 600, never in git."""


@secrets.command()
@click.pass_obj
def generate(env: Env) -> ExitStatus:
    """Generate the secrets picl makes that the file lacks: each cluster_key user's key pair,
    and with [slurm] the cluster's munge key.

    Secrets already there are kept, byte for byte; the file is written whole (a 600 temporary
    file beside it, then a rename) under a lock, so two runs at once add one key. `apply`
    does the same when a key is missing; `plan` never writes.
    """
    from picl.deploy.converge import generate_missing

    path = env.secrets_file
    notes = generate_missing(env.cluster, path)
    for note in notes:
        env.out.print(note)
    if not notes:
        env.out.print(f"nothing to generate: {path} holds every secret picl makes")
    return ExitStatus.OK
