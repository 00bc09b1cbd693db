"""Valid-TOML mutants of a spec, for the fuzz test: seeded, so any case replays from its number.

`mutant(seed)` applies one to three mutations to the text of a reference spec: values of every
TOML type, renamed keys and table headers (quotes, brackets, dots, escapes), duplicated and new
tables, odd unicode (line and paragraph separators, NEL, bidi marks), deep nesting, huge numbers,
empty arrays, CRLF line ends, or the whole document written again in another TOML layout. It
returns the first result that is valid TOML: tomllib reads it, or it nests too deep for tomllib.
"""

from __future__ import annotations

import datetime
import functools
import json
import random
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.spec.conftest import BASE

REFERENCE = (Path(__file__).parents[2] / "cluster.toml").read_text()
SPECS = [REFERENCE, BASE]

KEY_LINE = re.compile(r"^(\s*)([A-Za-z0-9_.\"' -]+?)(\s*=\s*)(.*)$")
HEADER_LINE = re.compile(r"^(\s*)(\[\[?)([^\]]*)(\]\]?)(.*)$")

# Characters str.splitlines() splits on but TOML does not, and other unicode that breaks
# naive column or width arithmetic.
ODD = ["\u2028", "\u2029", "\x85", "\u200b", "\u202e", "\ufeff", "\xa0", "\u3000", "é", "🦀",
       "\U0010fffd", "\u0301"]
ESCAPES = [r"\u001c", r"\u001d", r"\u001e", r"\u001f", r"\u000b", r"\u000c", r"\u0000", r"\n",
           r"\r", r"\t", r"\u2028", r"\u2029", r"\u0085", r"\"", r"\\", r"\u007f", r"\b", r"\f",
           r"\U0001F600", r"\u001b[31m"]
PIECES = ["]", "[", "]]", "[[", ".", "=", "#", "{", "}", ",", "'", " ", "a", "node0", "all",
          "/srv/x", "10.1.10.9", "${x}", "%s", "[red]", "[/]", "..", "-", "\t"]
SPEC_KEYS = ["name", "address", "uid", "gid", "groups", "shell", "sudo", "rename_from",
             "ssh_keys", "github", "cluster_key", "password", "secret", "servers", "serve",
             "server", "export", "mount", "clients", "options", "owner", "nodes", "what",
             "where", "type", "path", "content", "source", "mode", "all", "brightness",
             "branch", "upstream", "interval", "signed_by", "subnet", "interface", "wifi",
             "ssid", "psk", "country", "domain", "timezone", "primary", "target", "leds",
             "packages", "adress", "nmae", "cluster", "network", "users", "time", "shares",
             "mounts", "files", "agent"]
DEPTHS = [2, 8, 31, 32, 33, 64, 200, 999, 1000, 1001, 3000]
KEY_DEPTHS = [31, 32, 33, 64, 300]  # tomllib's time grows with the square of a key's parts


def basic_string(rng: random.Random, size: int = 6) -> str:
    """A "..." string of escapes, odd unicode and TOML punctuation."""
    out = []
    for _ in range(rng.randint(0, size)):
        kind = rng.random()
        if kind < 0.3:
            out.append(rng.choice(ODD))
        elif kind < 0.6:
            out.append(rng.choice(ESCAPES))
        else:
            out.append(rng.choice(PIECES).replace("\\", "\\\\").replace('"', '\\"'))
    return '"' + "".join(out) + '"'


def literal_string(rng: random.Random) -> str:
    """A '...' string: no escapes, anything but a quote and control characters."""
    pieces = [p for p in PIECES if "'" not in p and "\t" not in p] + ODD + ["\\", '"', "\\u0041"]
    return "'" + "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6))) + "'"


def multiline_string(rng: random.Random) -> str:
    """A multi-line string, basic or literal, holding real newlines and odd line breaks."""
    body = "\n".join(
        "".join(rng.choice(ODD + PIECES[:-1] + ["x", '"', '""']) for _ in range(rng.randint(0, 5)))
        for _ in range(rng.randint(1, 4))
    )
    if rng.random() < 0.5:
        body = body.replace("\\", "/").replace('"', "'").rstrip("'")
        return '"""' + rng.choice(["", "\n"]) + body + rng.choice(['"""', '""""', '"""""'])
    body = body.replace("'", '"').rstrip('"')
    return "'''" + rng.choice(["", "\n"]) + body + rng.choice(["'''", "''''", "'''''"])


def key(rng: random.Random, parts: int = 0) -> str:
    """A key: bare, quoted (brackets, dots, escapes, unicode), or dotted."""
    count = parts or rng.choice([1, 1, 1, 2, 3])
    simple = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.45:
            simple.append(rng.choice(SPEC_KEYS))
        elif kind < 0.75:
            simple.append(basic_string(rng, 4))
        elif kind < 0.9:
            simple.append(literal_string(rng))
        else:
            simple.append(rng.choice(["a-b", "_", "0", "1979-05-27", "true", "inf", "A_Z-09"]))
    dot = rng.choice([".", " . ", ".\t", "\t.  "])
    return dot.join(simple)


def deep_value(rng: random.Random, depth: int) -> str:
    """Arrays, inline tables, or both, nested `depth` levels."""
    kind = rng.choice(["array", "table", "mixed"])
    if kind == "array":
        return "[" * depth + rng.choice(["", "1", '"]"']) + "]" * depth
    if kind == "table":
        return "{ a = " * depth + "1" + " }" * depth
    return "[{ a = " * (depth // 2) + "1" + " }]" * (depth // 2)


def value(rng: random.Random, level: int = 0) -> str:
    """Any TOML value, biased towards ones a spec might hold and the edges of each type."""
    kind = rng.random()
    if kind < 0.12:
        return rng.choice(["0", "-1", "1000", "65533", "65534", "+7", "1_000", "0x7fffffff",
                           "0o777", "0b1", str(2**63 - 1), str(-(2**63)), str(2**64),
                           "9" * rng.randint(20, 400), str(rng.randint(-(2**70), 2**70))])
    if kind < 0.18:
        return rng.choice(["0.0", "-0.0", "0.1", "1e309", "-1e309", "inf", "-inf", "nan",
                           "+nan", "1e-400", "6.02e23", "1.5"])
    if kind < 0.22:
        return rng.choice(["true", "false"])
    if kind < 0.27:
        return rng.choice(["1979-05-27T07:32:00Z", "1979-05-27 07:32:00", "1979-05-27",
                           "07:32:00", "1979-05-27T00:32:00.999999-07:00"])
    if kind < 0.45:
        return basic_string(rng)
    if kind < 0.5:
        return literal_string(rng)
    if kind < 0.55:
        return multiline_string(rng)
    if kind < 0.62:
        return rng.choice(['"node0"', '"all"', '"/srv/x"', '"10.1.10.250"', '"eth0"', '"5m"',
                           '"0644"', '"x" ', '""', '"' + "a" * rng.choice([64, 10_000]) + '"'])
    if kind < 0.72 and level < 3:
        items = [value(rng, level + 1) for _ in range(rng.choice([0, 0, 1, 2, 3]))]
        if rng.random() < 0.3:
            return "[\n  " + ",  # ] [ \u2028\n  ".join(items) + rng.choice(["", ","]) + "\n]"
        return "[" + ", ".join(items) + rng.choice(["", ","] if items else [""]) + "]"
    if kind < 0.82 and level < 3:
        keys = list(dict.fromkeys(key(rng, 1) for _ in range(rng.choice([0, 1, 2]))))
        return "{" + ", ".join(f"{k} = {value(rng, level + 1)}" for k in keys) + "}"
    if kind < 0.86:
        return rng.choice(['{ secret = "wifi_psk" }', '{ secret = "nope" }', '{ secret = 1 }',
                           '{ secret = "wifi_psk", x = 1 }', "{}", "[]", "[[]]", '["all"]',
                           '["node0", "node0"]', '[{ secret = "root_password_hash" }]'])
    if kind < 0.9:
        return deep_value(rng, rng.choice(DEPTHS))
    return rng.choice(['"node1"', '["node1", "node9"]', '"10.1.10.0/24"', '"/shared"',
                       '"files/issue"', '"../etc/passwd"', '"\\u0000"', '"/"', '"ext4"'])


def _pick(
    rng: random.Random, lines: list[str], pattern: re.Pattern[str]
) -> tuple[int, tuple[str, ...]]:
    """A line that matches, by number, and its groups; (-1, ()) when none does."""
    found = [(i, match.groups()) for i, line in enumerate(lines) if (match := pattern.match(line))]
    return rng.choice(found) if found else (-1, ())


def new_value(rng: random.Random, lines: list[str]) -> list[str]:
    i, groups = _pick(rng, lines, KEY_LINE)
    if groups:
        indent, name, eq, _ = groups
        lines[i] = f"{indent}{name}{eq}{value(rng)}" + rng.choice(["", "  # ] \u2028 [x]"])
    return lines


def new_key(rng: random.Random, lines: list[str]) -> list[str]:
    i, groups = _pick(rng, lines, KEY_LINE)
    if groups:
        indent, _, eq, rest = groups
        lines[i] = f"{indent}{key(rng)}{eq}{rest}"
    return lines


def new_header(rng: random.Random, lines: list[str]) -> list[str]:
    i, groups = _pick(rng, lines, HEADER_LINE)
    if groups:
        indent, open_, name, close, rest = groups
        # A new name, or a table below the old one.
        name = key(rng) if rng.random() < 0.5 else f"{name}{rng.choice(['.', ' . '])}{key(rng, 1)}"
        space = rng.choice(["", " ", "\t"])
        lines[i] = f"{indent}{open_}{space}{name}{space}{close}{rest}"
    return lines


def _blocks(lines: list[str]) -> list[tuple[int, int]]:
    starts = [i for i, line in enumerate(lines) if HEADER_LINE.match(line)]
    return [(s, e) for s, e in zip(starts, [*starts[1:], len(lines)], strict=True)]


def duplicate_table(rng: random.Random, lines: list[str]) -> list[str]:
    blocks = _blocks(lines)
    if blocks:
        start, end = rng.choice(blocks)
        where = rng.choice([end, len(lines)])
        lines[where:where] = lines[start:end]
    return lines


def new_table(rng: random.Random, lines: list[str]) -> list[str]:
    arrays = [line.strip()[2:-2] for line in lines if line.strip().startswith("[[")]
    # Often a table inside the last element of an array of tables.
    name = f"{rng.choice(arrays)}.{key(rng, 1)}" if arrays and rng.random() < 0.5 else key(rng)
    header = rng.choice(["[", "[["])
    body = [f"{key(rng, 1)} = {value(rng)}" for _ in range(rng.randint(0, 3))]
    where = rng.choice([len(lines), *(s for s, _ in _blocks(lines))])
    lines[where:where] = [f"{header}{name}{']' * len(header)}", *body, ""]
    return lines


def new_line(rng: random.Random, lines: list[str]) -> list[str]:
    where = rng.randint(0, len(lines))
    lines.insert(where, f"{key(rng)} = {value(rng)}")
    return lines


def delete_line(rng: random.Random, lines: list[str]) -> list[str]:
    if lines:
        del lines[rng.randrange(len(lines))]
    return lines


def odd_text(rng: random.Random, lines: list[str]) -> list[str]:
    """Raw odd unicode into a string or a comment."""
    i = rng.randrange(len(lines))
    line = lines[i]
    quote = line.find('"')
    if quote >= 0 and rng.random() < 0.7:
        lines[i] = line[: quote + 1] + "".join(rng.choices(ODD, k=rng.randint(1, 3))) + line[
            quote + 1 :
        ]
    else:
        lines[i] = line + "  # " + "".join(rng.choices(ODD + PIECES, k=5))
    return lines


def spacing(rng: random.Random, lines: list[str]) -> list[str]:
    i = rng.randrange(len(lines))
    pad = rng.choice([" ", "\t", "  \t "])
    line = lines[i].replace("=", f"{pad}={pad}", 1)
    if line.lstrip().startswith("["):
        line = pad + line.replace("[", f"[{pad}", 1).replace("]", f"{pad}]", 1)
    lines[i] = line
    return lines


def deep(rng: random.Random, lines: list[str]) -> list[str]:
    kind = rng.random()
    if kind < 0.4:
        i, groups = _pick(rng, lines, KEY_LINE)
        if groups:
            indent, name, eq, _ = groups
            lines[i] = f"{indent}{name}{eq}{deep_value(rng, rng.choice(DEPTHS))}"
    elif kind < 0.7:
        lines.insert(rng.randint(0, len(lines)), ".".join(["a"] * rng.choice(KEY_DEPTHS)) + " = 1")
    else:
        lines.extend(["", "[" + ".".join(['"a]"'] * rng.choice(KEY_DEPTHS)) + "]", "x = 1"])
    return lines


def crlf(rng: random.Random, lines: list[str]) -> list[str]:
    return [line + "\r" for line in lines]


def relayout(rng: random.Random, lines: list[str]) -> list[str]:
    """The same data written again: tables as headers, dotted keys or inline tables."""
    try:
        return _Writer(rng).document(tomllib.loads("\n".join(lines))).split("\n")
    except (tomllib.TOMLDecodeError, RecursionError):  # the writer recurses too
        return lines


MUTATIONS: list[Callable[[random.Random, list[str]], list[str]]] = [
    new_value, new_value, new_value, new_key, new_key, new_header, new_header, duplicate_table,
    new_table, new_line, delete_line, odd_text, odd_text, spacing, deep, crlf, relayout,
]


@functools.lru_cache(maxsize=2)  # the test reads the mutant it was just given again
def parsed(text: str) -> dict[str, Any] | None:
    """tomllib's reading of a text; None when it nests too deep for tomllib's recursion."""
    try:
        return tomllib.loads(text)
    except RecursionError:
        return None


def valid(text: str) -> bool:
    """TOML 1.0 accepts it (too deep for tomllib's recursion is still valid TOML)."""
    try:
        parsed(text)
    except tomllib.TOMLDecodeError:
        return False
    return True


def mutant(seed: int) -> str:
    """The mutant numbered `seed`: the same text every run."""
    rng = random.Random(seed)
    base = rng.choice(SPECS)
    for _ in range(50):
        lines = base.split("\n")
        for _ in range(rng.choice([1, 1, 2, 3])):
            lines = rng.choice(MUTATIONS)(rng, lines)
        text = "\n".join(lines)
        if valid(text):
            return text
    return base


class _Writer:
    """TOML out of data, in a layout chosen at random (comments and order of keys are lost)."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def key(self, name: str) -> str:
        if re.fullmatch(r"[A-Za-z0-9_-]+", name) and self.rng.random() < 0.8:
            return name
        if "'" not in name and name.isprintable() and self.rng.random() < 0.3:
            return f"'{name}'"
        return self.string(name)

    def string(self, text: str) -> str:
        return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")

    def value(self, data: Any) -> str:
        if isinstance(data, bool):
            return "true" if data else "false"
        if isinstance(data, str):
            return self.string(data)
        if isinstance(data, (int, float)):
            return repr(data)
        if isinstance(data, (datetime.date, datetime.time)):
            return data.isoformat()
        if isinstance(data, list):
            return "[" + ", ".join(self.value(item) for item in data) + "]"
        items = (f"{self.key(k)} = {self.value(v)}" for k, v in data.items())
        return "{" + ", ".join(items) + "}"

    def document(self, data: dict[str, Any]) -> str:
        out: list[str] = []
        self.table(data, [], out)
        return "\n".join(out) + "\n"

    def table(self, data: dict[str, Any], path: list[str], out: list[str]) -> None:
        later: list[tuple[str, Any]] = []
        for name, item in data.items():
            tables = isinstance(item, list) and item and all(isinstance(i, dict) for i in item)
            if (isinstance(item, dict) or tables) and self.rng.random() < 0.7:
                later.append((name, item))
            elif isinstance(item, dict) and item and self.rng.random() < 0.5:
                for sub, leaf in item.items():  # dotted keys
                    out.append(f"{self.key(name)}.{self.key(sub)} = {self.value(leaf)}")
            else:
                out.append(f"{self.key(name)} = {self.value(item)}")
        for name, item in later:
            header = ".".join(self.key(p) for p in [*path, name])
            if isinstance(item, dict):
                out.append(f"\n[{header}]")
                self.table(item, [*path, name], out)
            else:
                for element in item:
                    out.append(f"\n[[{header}]]")
                    self.table(element, [*path, name], out)
