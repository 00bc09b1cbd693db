"""The command line as a whole: every command of the contract is there and loads."""

from __future__ import annotations

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
