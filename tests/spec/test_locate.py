"""Key positions in TOML text, as data: (document, key path, (line, column))."""

from __future__ import annotations

import tomllib

import pytest

from picl.spec.locate import positions

DOC = """\
# comment
top = 1
[cluster]
name = "a"   # trailing
  indented = 2
"quoted.key" = 3
dotted.key = 4

[[nodes]]
name = "n0"
[[nodes]]
name = "n1"
tags = ["a",
        "b", # why
  "c"]
inline = { secret = "x", other = 2 }
[nodes.extra]
deep = true
multi = \"\"\"
line
\"\"\"
after = 5
"""

CASES = [
    (("top",), (2, 1)),
    (("cluster",), (3, 2)),
    (("cluster", "name"), (4, 1)),
    (("cluster", "indented"), (5, 3)),
    (("cluster", "quoted.key"), (6, 1)),
    (("cluster", "dotted", "key"), (7, 1)),
    (("nodes", 0), (9, 3)),
    (("nodes", 0, "name"), (10, 1)),
    (("nodes", 1, "name"), (12, 1)),
    (("nodes", 1, "tags", 0), (13, 9)),
    (("nodes", 1, "tags", 1), (14, 9)),
    (("nodes", 1, "tags", 2), (15, 3)),
    (("nodes", 1, "inline", "secret"), (16, 12)),
    (("nodes", 1, "inline", "other"), (16, 26)),
    (("nodes", 1, "extra", "deep"), (18, 1)),
    (("nodes", 1, "extra", "after"), (22, 1)),
    (("nodes", 1, "missing"), (11, 3)),  # falls back to its table
    (("nowhere",), (1, 1)),
]


@pytest.mark.parametrize(("loc", "where"), CASES, ids=[".".join(map(str, c[0])) for c in CASES])
def test_position(loc: tuple, where: tuple[int, int]) -> None:
    assert positions(DOC).of(loc) == where


# Valid TOML that a line-by-line reading got wrong or crashed on: quoted keys holding brackets,
# dots and escapes; line breaks that str.splitlines() honours and TOML does not; the closing
# quotes of multi-line strings; date-times with a space; CRLF; tables of array elements.
TRICKY = [
    ("bracket-in-header", '["a]b"]\nx = 1\n', ("a]b", "x"), (2, 1)),
    ("bracket-in-dotted-header", '[a."b]c"]\nx = 1\n', ("a", "b]c", "x"), (2, 1)),
    ("brackets-in-array-header", '[["x]"]]\ny = 1\n[[ "x]" ]]\ny = 2\n', ("x]", 1, "y"), (4, 1)),
    ("literal-header", "['a]'.'b\"']\ny = 1\n", ("a]", 'b"', "y"), (2, 1)),
    ("spaced-dotted-header", '[ a . "b" .\tc ]\ny = 1\n', ("a", "b", "c"), (1, 3)),
    ("escaped-quote-in-key", '"a\\"b".c = 1\nd = 2\n', ('a"b', "c"), (1, 1)),
    ("escaped-quote-in-key-next", '"a\\"b".c = 1\nd = 2\n', ("d",), (2, 1)),
    ("unicode-escape-in-key", '"\\u00e9t\\u00E9" = 1\n', ("été",), (1, 1)),
    ("backslash-in-literal-key", "'a\\'.b = 1\n", ("a\\", "b"), (1, 1)),
    ("equals-in-key", '"a=b" = 1\nc = 2\n', ("a=b",), (1, 1)),
    ("key-spaced-dots", 'a . b\t.c = 1\n', ("a", "b", "c"), (1, 1)),
    ("brackets-in-inline-key", 'a = { "]" = 1, "}" = [2] }\n', ("a", "}", 0), (1, 23)),
    ("line-separator-in-string", 'a = "x\u2028y"\nb = 2\n', ("b",), (2, 1)),
    ("paragraph-separator-in-string", 'a = ["x\u2029", 1]\nb = 2\n', ("a", 1), (1, 12)),
    ("next-line-in-string", 'a = "\x85"\n[t]\nb = 2\n', ("t", "b"), (3, 1)),
    ("separator-in-key", '"\u2028" = 1\nb = 2\n', ("b",), (2, 1)),
    ("separator-in-comment", "a = 1 # \u2028 b = [\nc = 3\n", ("c",), (2, 1)),
    ("separator-in-multiline", 'a = """\nx\u2028"\n"""\nb = 2\n', ("b",), (4, 1)),
    ("separator-before-array", 'a = "\u2028"\nb = [\n  1,\n  2]\n', ("b", 1), (4, 3)),
    ("quotes-ending-multiline", 'a = """x""""\nb = 2\n', ("b",), (2, 1)),
    ("escaped-quotes-in-multiline", 'a = """x\\"""\n"""\nb = 2\n', ("b",), (3, 1)),
    ("header-in-multiline", "a = '''\n[b]\nc = 1\n'''\nd = 2\n", ("d",), (5, 1)),
    ("hash-in-strings", 'a = ["#", \'#\']\nb = 2 # [c]\n', ("a", 1), (1, 11)),
    ("datetime-with-space", "a = [1979-05-27 07:32:00, 2]\n", ("a", 1), (1, 27)),
    ("crlf", "a = 1\r\nb = [\r\n 2]\r\n", ("b", 0), (3, 2)),
    ("tables-of-array-elements", "[[a]]\n[[a.b]]\n[[a]]\n[[a.b]]\nx = 1\n", ("a", 1, "b", 0, "x"),
     (5, 1)),
    ("table-named-before-defined", "[a.b]\nx = 1\n[a]\ny = 2\n", ("a",), (3, 2)),
    ("table-only-named", "[a.b]\nx = 1\n", ("a",), (1, 2)),
    # Runs of quotes once sent the scanner into an endless loop (picl validate never returned).
    ("quote-runs", '[[s]]\nb = """"""\nr = [[false, """""""], {\'\' = {s = "."}, \'[\' = \'\'\'\'\'\'}]\n',
     ("s", 0, "r", 1, "["), (3, 41)),
]


@pytest.mark.timeout(60)  # not a speed check: a hang fails instead of stalling the suite
@pytest.mark.parametrize(("text", "loc", "where"), [c[1:] for c in TRICKY], ids=[c[0] for c in TRICKY])
def test_tricky_position(text: str, loc: tuple, where: tuple[int, int]) -> None:
    assert tomllib.loads(text)  # valid TOML, every one
    found = positions(text)
    assert loc in found.where
    assert found.of(loc) == where


DEEP = [
    ("array", "a = " + "[" * 1000 + "]" * 1000 + "\n", ("a", *[0] * 32), (1, 37)),
    ("inline-table", "a = " + "{b = " * 40 + "1" + "}" * 40 + "\n", ("a", *["b"] * 32), (1, 161)),
    ("dotted-key", "\n" + ".".join(["k"] * 5000) + " = 1\n", ("k",) * 33, (2, 1)),
    ("header", "[" + ".".join(['"]"'] * 40) + "]\n", ("]",) * 33, (1, 2)),
    ("array-tables", "[[a]]\n" * 2 + "[" + ".".join(["a"] * 40) + "]\n", ("a", 1) + ("a",) * 31,
     (3, 2)),
]


@pytest.mark.parametrize(("text", "loc", "where"), [c[1:] for c in DEEP], ids=[c[0] for c in DEEP])
def test_too_deep_is_found_where_it_starts(text: str, loc: tuple, where: tuple[int, int]) -> None:
    found = positions(text)
    assert found.too_deep == loc
    assert found.of(loc) == where


def test_the_spec_is_not_too_deep() -> None:
    assert positions(DOC).too_deep is None
