"""Key positions in TOML text, as data: (document, key path, (line, column))."""

from __future__ import annotations

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
