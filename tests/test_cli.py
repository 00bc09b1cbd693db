"""The command line as a whole: every command of the contract is there and loads."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from picl.cli import COMMANDS, cli
from tests.spec.conftest import run_picl


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_loads_under_its_own_name(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None and command.name == name


def test_help_lists_the_contract() -> None:
    result = run_picl("--help")
    assert result.code == 0
    listed = [line.split()[0] for line in result.out.split("Commands:")[1].splitlines()
              if line.strip()]
    assert listed == list(COMMANDS)


def test_unknown_command_is_an_error_not_changes_pending() -> None:
    result = run_picl("frobnicate")
    assert result.code == 1
    assert "No such command" in result.err and "Traceback" not in result.err


def test_problems_print_as_written_not_as_emoji(tmp_path: Path) -> None:
    spec = tmp_path / "cluster.toml"
    spec.write_text("# line\n" * 99 + "x = 1\n")  # ":100:" is rich's code for an emoji
    result = run_picl("--spec", str(spec), "validate")
    assert result.code == 1
    assert f"{spec}:100:1: x: unknown key" in result.err.splitlines()


def test_a_spec_path_is_printed_as_it_is(tmp_path: Path) -> None:
    spec = tmp_path / "[bold]" / "[/x]" / ":100:" / "cluster.toml"
    spec.parent.mkdir(parents=True)
    spec.write_text((Path(__file__).parents[1] / "cluster.toml").read_text())
    result = run_picl("--spec", str(spec), "validate")
    assert result.code == 0, result
    assert result.out.startswith(f"{spec}: valid")
    assert f"warning: {spec.parent / 'secrets.toml'} not found" in result.err
