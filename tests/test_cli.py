"""The command line as a whole: every command of the contract is there and loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from picl.cli import COMMANDS, SUMMARIES, cli, hoist
from tests.spec import conftest as spec_files
from tests.spec.conftest import run_picl

repo = spec_files.repo  # a fixture: a cluster repository of a valid spec


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


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_listed_summary_is_the_command_s_own(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None and command.help
    assert SUMMARIES[name].split() == command.help.split("\n\n")[0].split()


def test_help_loads_no_command_and_nothing_heavy() -> None:
    """`picl --help` starts fast: the commands' modules, pyinfra, pydantic, rich stay unread."""
    code = ("import sys\nfrom picl.cli import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\n"
            "print(' '.join(m for m in sys.modules if m.split('.')[0] in "
            "('pyinfra', 'pydantic', 'rich') or m.startswith('picl.cli.')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.splitlines()[-1].split()
    assert loaded == ["picl.cli.env"]


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
    assert f"{spec.parent / 'secrets.toml'}: what needs it is left" in result.err


def command_paths() -> list[tuple[str, ...]]:
    """Every command of the command line, subcommands of a group included."""
    ctx = click.Context(cli)
    paths = []
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        paths.append((name,))
        if isinstance(command, click.Group):
            paths += [(name, sub) for sub in command.list_commands(ctx)]
    return paths


GLOBALS = ["--spec", "other.toml", "--secrets", "s.toml", "--lab", "-v"]


@pytest.mark.parametrize("path", command_paths(), ids=" ".join)
@pytest.mark.parametrize("where", ["before", "after"])
def test_global_options_go_on_either_side_of_every_command(path: tuple[str, ...],
                                                           where: str) -> None:
    args = [*GLOBALS, *path] if where == "before" else [*path, *GLOBALS]
    assert hoist(args) == [*GLOBALS, *path]
    # PICL_IN_LAB: as inside a lab, so --lab does not look for one here.
    result = CliRunner().invoke(cli, [*args, "--help"], prog_name="picl",
                                env={"PICL_IN_LAB": "x"})
    assert result.exit_code == 0, result.output
    assert f"picl {' '.join(path)}" in result.output


@pytest.mark.parametrize(("args", "hoisted"), [
    (["validate", "--spec=x.toml"], ["--spec=x.toml", "validate"]),
    (["run", "--node", "node1", "--lab", "--", "uname", "-v", "--lab"],
     ["--lab", "run", "--node", "node1", "--", "uname", "-v", "--lab"]),
    (["lab", "exec", "--", "picl", "--spec", "a.toml"],
     ["lab", "exec", "--", "picl", "--spec", "a.toml"]),
    (["--verbose", "plan", "--json"], ["--verbose", "plan", "--json"]),
])
def test_what_is_hoisted_and_what_stays(args: list[str], hoisted: list[str]) -> None:
    assert hoist(args) == hoisted


def test_a_global_option_after_the_command_is_used(repo: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_picl("validate", "--spec", str(repo / "cluster.toml"), cwd=elsewhere)
    assert result.code == 0, result.err
    assert f"{repo / 'cluster.toml'}: valid" in result.out


def test_a_global_option_without_its_value_is_a_usage_error() -> None:
    result = run_picl("validate", "--spec")
    assert result.code == 1
    assert "Option '--spec' requires an argument." in result.err


# Lab commands that act on a lab which exists: a spec broken elsewhere, or no secrets.toml, is
# none of their business. (No lab of this name exists: each says so, and only that.)
LAB_COMMANDS = [("status",), ("exec", "--", "true"), ("ssh", "node0", "--", "true"),
                ("kill", "node1"), ("start", "node1"), ("down",)]


@pytest.mark.parametrize("command", LAB_COMMANDS, ids=" ".join)
def test_lab_commands_need_the_lab_not_a_valid_spec_nor_secrets(command: tuple[str, ...],
                                                                tmp_path: Path) -> None:
    name = f"gone{os.getpid()}"
    broken = spec_files.BASE.replace('name = "arrakis"', f'name = "{name}"').replace(
        "uid = 1000", 'uid = "one"')
    (tmp_path / "cluster.toml").write_text(broken)
    result = run_picl("lab", *command, cwd=tmp_path)
    assert "cluster.toml:" not in result.err and "warning" not in result.err, result.err
    assert name in result.out + result.err


@pytest.mark.parametrize(("value", "expected"), [
    (None, 60), ("", 60), ("10", 10), ("3600", 3600), ("9", None), ("3601", None), ("1m", None),
])
def test_the_window_to_confirm_in_is_whole_seconds_from_ten(
    value: str | None, expected: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from picl.cli.converge import confirm_timeout
    from picl.errors import PiclError

    monkeypatch.delenv("PICL_CONFIRM_TIMEOUT", raising=False)
    if value is not None:
        monkeypatch.setenv("PICL_CONFIRM_TIMEOUT", value)
    if expected is None:
        with pytest.raises(PiclError, match=r"PICL_CONFIRM_TIMEOUT='.*': give whole seconds, 10"):
            confirm_timeout()
    else:
        assert confirm_timeout() == expected
