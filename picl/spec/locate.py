"""Where each key of a TOML document is written: (line, column) per key path.

tomllib gives values without positions; errors must name the line. This scanner reads the
(already valid) text once and records the position of every table header, key, inline-table
key and array element. A path it never saw falls back to its nearest recorded ancestor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

Loc = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _split_key(text: str) -> list[str]:
    """A dotted key (`a.b`, `"a b".c`) into its parts."""
    parts, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch in "\"'":
            end = text.index(ch, i + 1)
            parts.append(text[i + 1 : end])
            i = end + 1
        elif ch == "." or ch.isspace():
            i += 1
        else:
            match = _BARE_KEY.match(text, i)
            if not match:
                break
            parts.append(match.group())
            i = match.end()
    return parts


@dataclass
class Positions:
    where: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def of(self, loc: Loc) -> tuple[int, int]:
        """The position of `loc`, or of its closest ancestor; (1, 1) for the document."""
        for end in range(len(loc), 0, -1):
            found = self.where.get(tuple(loc[:end]))
            if found:
                return found
        return (1, 1)

    def record(self, loc: Loc, line: int, col: int) -> None:
        self.where.setdefault(loc, (line, col))


class _Scanner:
    """Walks a value (scalar, inline table or array) character by character across lines."""

    def __init__(self, lines: list[str], positions: Positions):
        self.lines = lines
        self.positions = positions
        self.row = 0
        self.col = 0

    def peek(self) -> str:
        while self.row < len(self.lines):
            line = self.lines[self.row]
            while self.col < len(line) and line[self.col] in " \t":
                self.col += 1
            if self.col < len(line) and line[self.col] != "#":
                return line[self.col]
            self.row, self.col = self.row + 1, 0
        return ""

    def value(self, loc: Loc) -> None:
        ch = self.peek()
        self.positions.record(loc, self.row + 1, self.col + 1)
        if ch == "[":
            self.col += 1
            index = 0
            while self.peek() not in ("]", ""):
                self.value((*loc, index))
                index += 1
                if self.peek() == ",":
                    self.col += 1
            self.col += 1
        elif ch == "{":
            self.col += 1
            while self.peek() not in ("}", ""):
                self.key_value(loc)
                if self.peek() == ",":
                    self.col += 1
            self.col += 1
        elif ch in "\"'":
            self.string()
        else:
            line = self.lines[self.row]
            while self.col < len(line) and line[self.col] not in ",]}# \t":
                self.col += 1

    def string(self) -> None:
        line = self.lines[self.row]
        quote = line[self.col : self.col + 3]
        if quote in ('"""', "'''"):
            self.col += 3
            while self.row < len(self.lines):
                end = self.lines[self.row].find(quote, self.col)
                if end >= 0:
                    self.col = end + 3
                    return
                self.row, self.col = self.row + 1, 0
            return
        ch = line[self.col]
        i = self.col + 1
        while i < len(line) and line[i] != ch:
            i += 2 if ch == '"' and line[i] == "\\" else 1
        self.col = i + 1

    def key_value(self, table: Loc) -> None:
        line = self.lines[self.row]
        start = self.col
        eq = self._find_equals(line, start)
        parts = _split_key(line[start:eq])
        for depth in range(1, len(parts) + 1):
            self.positions.record((*table, *parts[:depth]), self.row + 1, start + 1)
        self.col = eq + 1
        self.value((*table, *parts))

    @staticmethod
    def _find_equals(line: str, start: int) -> int:
        quote = ""
        for i in range(start, len(line)):
            ch = line[i]
            if quote:
                quote = "" if ch == quote else quote
            elif ch in "\"'":
                quote = ch
            elif ch == "=":
                return i
        return len(line)


def positions(text: str) -> Positions:
    """Positions of every key path in a TOML document that tomllib accepted."""
    lines = text.splitlines()
    found = Positions()
    scanner = _Scanner(lines, found)
    arrays: dict[Loc, int] = {}
    table: Loc = ()
    while scanner.peek():
        row = scanner.row
        header = _HEADER.match(lines[row]) if scanner.col == len(lines[row]) - len(
            lines[row].lstrip()
        ) else None
        if header:
            parts = _split_key(header.group(2))
            table = _resolve(tuple(parts), arrays)
            if header.group(1) == "[[":
                arrays[tuple(parts)] = arrays.get(tuple(parts), -1) + 1
                table = (*table, arrays[tuple(parts)])
            found.record(table, row + 1, header.start(2) + 1)
            scanner.row, scanner.col = row + 1, 0
        else:
            scanner.key_value(table)
    return found


def _resolve(parts: Loc, arrays: dict[Loc, int]) -> Loc:
    """`[nodes.x]` after `[[nodes]]` means the last element's table: insert the index."""
    resolved: Loc = ()
    for i, part in enumerate(parts):
        resolved = (*resolved, part)
        prefix = tuple(parts[: i + 1])
        if prefix in arrays and i + 1 < len(parts):
            resolved = (*resolved, arrays[prefix])
    return resolved
