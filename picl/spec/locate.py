"""Where each key of a TOML document is written: (line, column) per key path.

tomllib gives values without positions; errors must name the line. This scanner reads the text
once, as TOML does: lines end at "\\n" only (not at U+2028, NEL or the other breaks of
`str.splitlines`), keys are bare or quoted (with escapes, brackets and dots inside the quotes),
strings come in four kinds. It records the position of every table header, key, inline-table
key and array element, and the first key path nested deeper than MAX_DEPTH. It never recurses
and never raises, whatever the text, so it also bounds the nesting before tomllib (which
recurses) reads it. A path it never saw falls back to its nearest recorded ancestor.
`format_loc` writes a key path back for messages, quoting keys as TOML does.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field

Loc = tuple[str | int, ...]

# Tables and arrays inside each other, counting array elements: the spec's deepest key has 4.
MAX_DEPTH = 32

_BLANK = re.compile(r"[ \t\r]*(?:#[^\n]*)?")
_BLANK_LINES = re.compile(r"(?:[ \t\r\n]+|#[^\n]*)*")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_BASIC = re.compile(r'"((?:[^"\\\n]|\\[^\n])*)"?')
_LITERAL = re.compile(r"'([^'\n]*)'?")
_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)")
_ESCAPED = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
_ESCAPES = {char: "\\" + code for code, char in _ESCAPED.items()}
_SCALAR = re.compile(r"""[^ \t\r\n,\[\]{}#"']+""")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME_AFTER_SPACE = re.compile(r""" \d{2}:[^ \t\r\n,\[\]{}#"']*""")
_STRING_STOP = {'"': re.compile(r'["\\]'), "'": re.compile("'")}


@dataclass
class Positions:
    """Where each key path of one document is written, and whether it nests too deep."""

    where: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    # The first key path nested deeper than MAX_DEPTH, cut one level below the limit.
    too_deep: Loc | None = None
    # Tables only named as the parent of a header (`a` of `[a.b]`): a definition wins over them.
    _implied: set[Loc] = field(default_factory=set, repr=False)

    def of(self, loc: Loc) -> tuple[int, int]:
        """The position of `loc`, or of its closest ancestor; (1, 1) for the document."""
        for end in range(len(loc), 0, -1):
            found = self.where.get(tuple(loc[:end]))
            if found:
                return found
        return (1, 1)

    def record(self, loc: Loc, line: int, col: int, implied: bool = False) -> None:
        if len(loc) > MAX_DEPTH:
            loc = loc[: MAX_DEPTH + 1]
            if self.too_deep is None:
                self.too_deep = loc
        if loc in self._implied and not implied:
            self._implied.discard(loc)
            self.where[loc] = (line, col)
        elif loc not in self.where:
            self.where[loc] = (line, col)
            if implied:
                self._implied.add(loc)


@dataclass
class _Open:
    """An array or inline table being read: its closing bracket, path and items so far."""

    closer: str
    loc: Loc
    items: int = 0


def _child(loc: Loc, *parts: str | int) -> Loc:
    # Paths stop growing one level past the limit, so even absurd nesting costs linear time.
    return (*loc, *parts)[: MAX_DEPTH + 1]


def _unescape(raw: str) -> str:
    """A basic string's escapes (`\\"`, `\\n`, `\\u00e9`...) as the characters they stand for."""

    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if len(code) == 1:
            return _ESCAPED.get(code, match.group())
        try:
            return chr(int(code[1:], 16))
        except (ValueError, OverflowError):
            return match.group()

    return _ESCAPE.sub(one, raw)


class _Scanner:
    """Reads a document once, left to right, recording positions into `found`."""

    def __init__(self, text: str):
        self.text = text
        self.i = 0
        self.found = Positions()
        self.line_starts = [0, *(m.end() for m in re.finditer("\n", text))]

    def record(self, loc: Loc, at: int, implied: bool = False) -> None:
        row = bisect_right(self.line_starts, at) - 1
        self.found.record(loc, row + 1, at - self.line_starts[row] + 1, implied)

    def peek(self) -> str:
        return self.text[self.i : self.i + 1]

    def skip(self, newlines: bool = False) -> str:
        """Past spaces, tabs and comments (and line ends, inside arrays and inline tables): the
        character that follows, "" at the end."""
        blank = _BLANK_LINES if newlines else _BLANK
        self.i = blank.match(self.text, self.i).end()  # type: ignore[union-attr]
        return self.text[self.i : self.i + 1]

    def next_line(self) -> None:
        end = self.text.find("\n", self.i)
        self.i = len(self.text) if end < 0 else end + 1

    def document(self) -> Positions:
        table: Loc = ()
        arrays: dict[Loc, int] = {}  # array-of-tables path -> index of its last element
        while self.i < len(self.text):
            first = self.skip(newlines=True)
            if first == "[":
                table = self.header(arrays)
            elif first:
                self.value(self.key_and_equals(table))
            self.next_line()
        return self.found

    def header(self, arrays: dict[Loc, int]) -> Loc:
        """`[a.b]` or `[[a.b]]`: the table's path, with the index of the elements it is in."""
        self.i += 1
        array = self.peek() == "["
        self.i += array
        self.skip()
        start = self.i
        parts = self.key()[: MAX_DEPTH + 1]
        loc: Loc = ()
        for n, part in enumerate(parts):
            loc = _child(loc, part)
            if n + 1 < len(parts):
                self.record(loc, start, implied=True)
                if loc in arrays:  # `[nodes.x]` after `[[nodes]]`: the last element's table
                    loc = _child(loc, arrays[loc])
        if array:
            self.record(loc, start)
            arrays[loc] = arrays.get(loc, -1) + 1
            loc = _child(loc, arrays[loc])
        self.record(loc, start)
        return loc

    def key(self) -> list[str]:
        """A key, dotted or not, as its parts: `a."b.c".'d'` -> ['a', 'b.c', 'd']."""
        parts: list[str] = []
        while True:
            quote = self.skip()
            match = (_BASIC if quote == '"' else _LITERAL if quote == "'" else _BARE_KEY).match(
                self.text, self.i
            )
            if not match:
                return parts
            self.i = match.end()
            if quote == '"':
                parts.append(_unescape(match.group(1)))
            else:
                parts.append(match.group(1) if quote == "'" else match.group())
            if self.skip() != ".":
                return parts
            self.i += 1

    def key_and_equals(self, table: Loc) -> Loc:
        """A key and its `=`, recorded where the key starts: the path of the value after it."""
        start = self.i
        loc = _child(table, *self.key())
        for end in range(len(table) + 1, len(loc) + 1):
            self.record(loc[:end], start)
        self.i += self.skip() == "="
        return loc

    def value(self, loc: Loc) -> None:
        """One value; arrays and inline tables are followed on a stack, not by recursion."""
        stack: list[_Open] = []
        while True:
            start = self.skip(newlines=bool(stack))
            self.record(loc, self.i)
            if start in ("[", "{"):
                self.i += 1
                stack.append(_Open("]" if start == "[" else "}", loc))
            elif start in ('"', "'"):
                self.string()
            else:
                self.scalar()
            following = self.next_item(stack)
            if following is None:
                return
            loc = following

    def next_item(self, stack: list[_Open]) -> Loc | None:
        """Past the brackets that close here: the path of the next element or key, if any."""
        while stack:
            top = stack[-1]
            ch = self.skip(newlines=True)
            if not ch:
                return None
            if ch == top.closer:
                self.i += 1
                stack.pop()
            elif ch == "," and top.items:
                self.i += 1
            else:
                top.items += 1
                if top.closer == "]":
                    return _child(top.loc, top.items - 1)
                return self.key_and_equals(top.loc)
        return None

    def string(self) -> None:
        """Past a string of any of the four kinds."""
        quote = self.peek()
        if not self.text.startswith(quote * 3, self.i):
            single = _BASIC if quote == '"' else _LITERAL  # matches: it starts at the quote
            self.i = single.match(self.text, self.i).end()  # type: ignore[union-attr]
            return
        stop = _STRING_STOP[quote]
        i = self.i + 3
        while (found := stop.search(self.text, i)) is not None:
            i = found.start()
            if self.text[i] == "\\":
                i += 2
                continue
            run = 1
            while self.text.startswith(quote, i + run):
                run += 1
            # Up to two quotes just before the closing three belong to the string.
            if run >= 3:
                self.i = i + min(run, 5)
                return
            i += run
        self.i = len(self.text)

    def scalar(self) -> None:
        """Past a number, boolean or date-time (`1979-05-27 07:32:00` holds a space)."""
        match = _SCALAR.match(self.text, self.i)
        if match is None:
            self.i += self.peek() not in ("", "\n")  # not a value: step over it
            return
        self.i = match.end()
        if _DATE.fullmatch(match.group()):
            time = _TIME_AFTER_SPACE.match(self.text, self.i)
            self.i = time.end() if time else self.i


def positions(text: str) -> Positions:
    """Positions of every key path in a TOML document, and whether it nests too deep."""
    return _Scanner(text).document()


def format_loc(loc: Loc) -> str:
    """('nodes', 1, 'address') -> 'nodes[1].address'; other keys quoted: 'nodes[1]."a]b"'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{_toml_key(part)}" if out else _toml_key(part)
    return out


def _toml_key(key: str) -> str:
    """A key as TOML writes it: bare, or quoted with quotes and unprintable characters escaped,
    so that a message stays one line and says which key it means."""
    if _BARE_KEY.fullmatch(key):
        return key
    out = ""
    for ch in key:
        if ch in _ESCAPES:
            out += _ESCAPES[ch]
        elif not ch.isprintable():
            out += f"\\u{ord(ch):04X}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08X}"
        else:
            out += ch
    return f'"{out}"'
