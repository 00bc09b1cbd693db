"""The reference docs: the committed files are what the code generates, and the generator's
words for types, defaults, constraints and commands, as data."""

from __future__ import annotations

import re
from ipaddress import IPv4Address
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types
import click
import pytest
from click.testing import CliRunner
from pydantic import AfterValidator, BaseModel, Field

from picl import reference
from picl.cli import COMMANDS, cli
from picl.errors import PiclError
from picl.reference import Key, Section
from picl.spec import Cluster, checks
from picl.spec.models import Hostname, Line, NodeSelection, Secret

DOCS = Path(__file__).resolve().parents[1] / "docs" / "reference"
CLUSTER_TOML = DOCS / "cluster-toml.md"
COMMANDS_MD = DOCS / "commands.md"

NODE_NAME = "A node name: one RFC 1123 label, lower case (it becomes the hostname and a DNS name)."
USERNAME = Annotated[Line, AfterValidator(checks.username)]

# (annotation, metadata, type in words, what it accepts)
SHAPES: list[tuple[Any, list[Any], str, list[str]]] = [
    (str, [], "text (any number of lines)", []),
    (Line, [], "string", []),
    (bool, [], "boolean", []),
    (float, [annotated_types.Ge(0.0), annotated_types.Le(1.0)], "number", ["From 0.0 to 1.0."]),
    (int, [annotated_types.Gt(0)], "integer", ["More than 0."]),
    (Line, [annotated_types.MinLen(1), annotated_types.MaxLen(32)], "string",
     ["From 1 to 32 characters."]),
    (IPv4Address, [], "IPv4 address", []),
    (list[Line], [annotated_types.MinLen(1)], "list of strings", ["At least 1 item."]),
    (list[str], [], "list of texts (any number of lines)", []),
    (Literal["graphical", "multi-user"], [], 'one of `"graphical"` | `"multi-user"`', []),
    (Hostname, [], "string", [NODE_NAME]),
    (Hostname | None, [], "string", [NODE_NAME]),
    (list[USERNAME], [], "list of strings",
     ["Each item: a user or group name Debian accepts."]),
    (NodeSelection, [], '`"all"` or list of strings', [f"Each item: a{NODE_NAME[1:]}"]),
    (Secret, [], 'secret reference `{ secret = "NAME" }`', []),
    (Secret | None, [], 'secret reference `{ secret = "NAME" }`', []),
]


@pytest.mark.parametrize(("annotation", "metadata", "words", "notes"), SHAPES)
def test_a_type_in_words(annotation: Any, metadata: list[Any], words: str,
                         notes: list[str]) -> None:
    found = reference.shape(annotation, metadata)
    assert (found.words, found.notes) == (words, notes)


class Pump(BaseModel):
    """A pump of the tank."""

    name: Line = Field(description="What it is called")
    speed: int = Field(default=3, ge=1, le=5)
    tags: list[Line] = Field(default_factory=list)


class Tank(BaseModel):
    pumps: list[Pump] = Field(min_length=1)
    label: str | None = None


def test_a_model_becomes_its_tables_in_field_order() -> None:
    assert list(reference.sections(Tank)) == [
        Section("", False, "", (
            Key("pumps", "array of tables", "required", "At least 1 table.", "[[pumps]]"),
            Key("label", "text (any number of lines)", "not set", ""),
        )),
        Section("pumps", True, "A pump of the tank.", (
            Key("pumps[].name", "string", "required", "What it is called."),
            Key("pumps[].speed", "integer", "`3`", "From 1 to 5."),
            Key("pumps[].tags", "list of strings", "`[]`", ""),
        )),
    ]


def test_a_check_without_a_docstring_stops_the_generator() -> None:
    def unsaid(value: str) -> str:
        return value

    unsaid.__module__ = checks.__name__
    with pytest.raises(PiclError, match="unsaid: no docstring"):
        reference.shape(Annotated[str, AfterValidator(unsaid)])


def test_a_table_cell_keeps_its_pipes_literal() -> None:
    assert reference.table(["a", "b"], [["x | y", "z\nw"]]) == [
        "| a | b |", "|---|---|", "| x \\| y | z w |",
    ]


@click.group()
def tool() -> None:
    """A tool."""


@tool.command()
@click.argument("node")
@click.option("--mode", type=click.Choice(["fast", "slow"]), default="fast", show_default=True,
              help="How to go.")
@click.option("--count", type=click.IntRange(min=1), metavar="N", help="How many times.")
@click.option("--wait/--no-wait", default=True, help="Wait for it.")
@click.option("--secret", hidden=True)
def go(node: str, mode: str, count: int | None, wait: bool, secret: str | None) -> None:
    """Go to NODE.

    \b
      fast  at once
      slow  later
    """


def test_a_command_in_markdown() -> None:
    lines = reference.commands_md(tool, "tool").splitlines()
    start = lines.index("## `tool go`")
    assert lines[start:] == [
        "## `tool go`",
        "",
        "```text",
        "tool go [OPTIONS] NODE",
        "```",
        "",
        "Go to NODE.",
        "",
        "```text",
        "  fast  at once",
        "  slow  later",
        "```",
        "",
        "| argument | value | required |",
        "|---|---|---|",
        "| `NODE` | text | yes |",
        "",
        "| option | value | default | description |",
        "|---|---|---|---|",
        "| `--mode` | one of `fast`, `slow` | `fast` | How to go. |",
        "| `--count N` | integer, at least 1 |  | How many times. |",
        "| `--wait / --no-wait` | flag | `--wait` | Wait for it. |",
    ]
    assert "| [`go`](#tool-go) | Go to NODE. |" in lines


def _row(text: str, key: str) -> list[str]:
    """The cells of the row of a markdown table whose first cell names `key`."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        if cells[0] == f"`{key}`" or cells[0].startswith(f"[`{key}`]("):
            return cells
    raise AssertionError(f"no row for {key} in the reference")


def test_committed_reference_is_what_the_code_generates() -> None:
    stale = [path.name for path in reference.stale(DOCS)]
    assert stale == [], f"docs/reference is stale ({', '.join(stale)}): run `make docs`"


def _paths(schema: dict[str, Any], node: dict[str, Any], prefix: str) -> list[str]:
    """Every key path the JSON Schema allows, found without the generator's own walk."""
    found = []
    for name, prop in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        found.append(path)
        for option in [prop, *prop.get("anyOf", [])]:
            array = option.get("type") == "array"
            target = option.get("items", {}) if array else option
            ref = target.get("$ref", "").rsplit("/", 1)[-1]
            if ref and ref != "SecretRef":
                found += _paths(schema, schema["$defs"][ref], f"{path}[]." if array else f"{path}.")
    return found


def test_every_key_of_the_spec_is_in_the_reference() -> None:
    text = CLUSTER_TOML.read_text()
    paths = _paths(Cluster.model_json_schema(), Cluster.model_json_schema(), "")
    assert {"nodes[].address", "leds.brightness", "network.wifi.ssid"} <= set(paths)
    assert [p for p in paths if f"`{p}`" not in text] == []


def test_every_command_is_in_the_reference() -> None:
    text = COMMANDS_MD.read_text()
    ctx = click.Context(cli)
    names = []
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        names.append(name)
        if isinstance(command, click.Group):
            names += [f"{name} {sub}" for sub in command.list_commands(ctx)]
    assert [n for n in names if f"## `picl {n}`" not in text] == []


@pytest.mark.parametrize(("key", "words", "default"), [
    ("agent.interval", "string", '`"5m"`'),
    ("leds.brightness", "number", "`0.1`"),
    ("nodes[].target", 'one of `"graphical"` \\| `"multi-user"`', '`"multi-user"`'),
    ("users[].cluster_key", "boolean", "`false`"),
    ("users[].gid", "integer", "not set"),
    ("nodes[].address", "IPv4 address", "required"),
    ("network.wifi.psk", 'secret reference `{ secret = "NAME" }`', "required"),
    ("users[].password", 'secret reference `{ secret = "NAME" }`', "not set"),
])
def test_a_key_shows_its_type_and_default(key: str, words: str, default: str) -> None:
    assert _row(CLUSTER_TOML.read_text(), key)[1:3] == [words, default]


def test_a_command_option_shows_its_choices_and_default() -> None:
    text = COMMANDS_MD.read_text()
    section = text.split("## `picl leds clear`")[1].split("\n## ")[0]
    assert ("| `--backend` | one of `blinkt`, `terminal`, `none` | `blinkt` |"
            in section)


def test_check_names_each_stale_file_and_how_to_regenerate(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(reference.main, [str(tmp_path)]).exit_code == 0
    assert runner.invoke(reference.main, ["--check", str(tmp_path)]).exit_code == 0
    (tmp_path / "commands.md").write_text("# by hand\n")
    result = runner.invoke(reference.main, ["--check", str(tmp_path)])
    assert result.exit_code == 1
    assert "commands.md: stale: run `make docs`" in result.output
    assert "cluster-toml.md" not in result.output


def test_only_the_cli_side_imports_the_generator() -> None:
    root = DOCS.parents[1]
    sources = [p for d in ("picl/spec", "deploy", "facts", "transport", "operate", "reconciler")
               for p in (root / d).rglob("*.py")]
    assert sources
    assert [str(p.relative_to(root)) for p in sources
            if "picl.reference" in p.read_text() or "import reference" in p.read_text()] == []


def notation(text: str) -> Any:
    """The keys a --json document's notation in the reference promises, as nested data:
    an object is a dict of key -> shape (None: a value), a list is [shape]."""
    tokens = re.findall(r'[{}\[\]:,]|\.\.\.|"[^"]*"', text)
    assert "".join(tokens) == re.sub(r"\s", "", text), "not the reference's notation"
    tokens.reverse()

    def shape() -> Any:
        token = tokens.pop()
        if token == "[":
            inner = None if tokens[-1] == "..." and tokens.pop() else shape()
            assert tokens.pop() == "]"
            return [inner]
        assert token == "{"
        members: dict[str, Any] = {}
        while True:
            key = tokens.pop().strip('"')
            members[key] = shape() if tokens[-1] == ":" and tokens.pop() else None
            if tokens.pop() == "}":
                return members

    found = shape()
    assert not tokens
    return found


def shape_of(value: Any) -> Any:
    """The keys of a document as produced, in the same terms."""
    if isinstance(value, dict):
        return {key: shape_of(item) for key, item in value.items()}
    if isinstance(value, list):
        assert value, "a sample list must hold an item to show its shape"
        return [shape_of(value[0])]
    return None


def test_the_notation_reads_as_data() -> None:
    assert notation('{"a", "b": [{"c"}], "d": [...], "e": {"f"}}') == {
        "a": None, "b": [{"c": None}], "d": [None], "e": {"f": None}}


def _documents() -> list[tuple[str, Any, str]]:
    """(command, a document it printed from full sample data, the shape its help shows)."""
    from picl.cli.converge import APPLY_JSON, PLAN_JSON, apply_document, plan_document
    from picl.cli.health import CHECK_JSON, health_document
    from picl.cli.run import RUN_JSON, run_document
    from picl.deploy.changes import Attribute, Change, NodePlan
    from picl.deploy.converge import Outcome
    from picl.deploy.plan import Plan
    from picl.operate.health import Check, Level, NodeHealth
    from picl.transport.remote import Reply

    change = Change("hosts", "update", (Attribute("default", "a", "b"),), diff="-a\n+b\n",
                    blocked="a foreign line")
    plan = Plan([NodePlan("node0", [change]), NodePlan("node1", error="unreachable")],
                warnings=["gh:someone: cannot fetch keys"])
    warnings = plan.warnings
    outcome = Outcome("node0", ok=False, error="not confirmed", seconds=2.0, rolled_back=True)
    reply = Reply("node0", 0, stdout="ok\n", seconds=0.3)
    health = NodeHealth("node0", [Check("ssh", Level.OK, "0.3s")])
    return [
        ("plan", plan_document(plan, warnings), PLAN_JSON),
        ("apply", apply_document(plan, [outcome], warnings), APPLY_JSON),
        ("run", run_document("uptime", "federico", [reply]), RUN_JSON),
        ("check", health_document([health]), CHECK_JSON),
    ]


@pytest.mark.parametrize(("command", "document", "shown"), _documents(),
                         ids=[d[0] for d in _documents()])
def test_every_json_document_has_the_keys_the_reference_shows(command: str, document: Any,
                                                               shown: str) -> None:
    assert shape_of(document) == notation(shown)
    section = COMMANDS_MD.read_text().split(f"## `picl {command}`")[1].split("\n## ")[0]
    assert shown in section


def test_every_condition_of_the_agent_is_explained() -> None:
    from picl.reconciler.status import CONDITIONS

    section = COMMANDS_MD.read_text().split("## `picl status`")[1].split("\n## ")[0]
    readme = (DOCS.parents[1] / "README.md").read_text()
    assert [c for c in CONDITIONS if f"\n{c} " not in section] == []
    assert [c for c in CONDITIONS if c not in readme] == []
