"""Commands about the spec itself: validate, init, schema."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import click
from rich.markup import escape

from picl.cli.env import Env
from picl.errors import PiclError
from picl.exit import ExitStatus
from picl.spec import SECRETS_FILE, Cluster

SCHEMA_FILE = "cluster.schema.json"


def json_schema() -> dict[str, object]:
    """The JSON Schema of cluster.toml, for editors (Taplo / Even Better TOML)."""
    schema = Cluster.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def _summary(cluster: Cluster) -> str:
    counts = {
        "node": len(cluster.nodes),
        "user": len(cluster.users),
        "share": len(cluster.shares),
        "mount": len(cluster.mounts),
        "file": len(cluster.files),
    }
    return ", ".join(f"{n} {what}{'s' * (n != 1)}" for what, n in counts.items() if n)


@click.command()
@click.pass_obj
def validate(env: Env) -> ExitStatus:
    """Check the spec: 0 valid, 1 invalid, every problem as FILE:LINE:COL: key.path: message."""
    cluster = env.cluster
    env.out.print(f"{escape(str(env.spec_path))}: valid: cluster {cluster.cluster.name!r}, "
                  f"{_summary(cluster)}")
    env.out.print(
        "checked: keys and types, names (hostnames, users, groups), addresses in "
        f"{cluster.network.subnet}, unique names/addresses/uids/gids, references to nodes and "
        "users, paths and mount options, SSH keys, durations, secret references",
        style="dim",
    )
    return ExitStatus.OK


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.pass_obj
def init(env: Env, directory: Path) -> ExitStatus:
    """Write a commented starter cluster.toml (and a .gitignore keeping secrets.toml out of git)."""
    spec = directory / "cluster.toml"
    if spec.exists():
        raise PiclError(f"{spec}: already exists; picl init never overwrites a spec")
    directory.mkdir(parents=True, exist_ok=True)
    spec.write_text((files("picl") / "starter.toml").read_text())
    (directory / SCHEMA_FILE).write_text(json.dumps(json_schema(), indent=2) + "\n")
    ignore = directory / ".gitignore"
    kept = ignore.read_text().splitlines() if ignore.exists() else []
    if SECRETS_FILE not in kept:
        with ignore.open("a") as out:
            out.write(f"{SECRETS_FILE}\n")
    env.out.print(f"wrote {spec}, {directory / SCHEMA_FILE} and {ignore}")
    env.out.print("next: edit it, then `picl validate`; keep secrets in secrets.toml beside it")
    return ExitStatus.OK


@click.command()
@click.pass_obj
def schema(env: Env) -> ExitStatus:
    """Print the JSON Schema of cluster.toml (for editor completion and checks)."""
    env.out.print_json(json.dumps(json_schema()), highlight=False)
    return ExitStatus.OK
