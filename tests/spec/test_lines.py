"""Every string of the spec is one line of some file: a control character in any is refused.

The cases are made from the spec itself: each string written in BASE (but a file's content)
gets a line break, CR, NUL, ... and must be reported on its own line, the character escaped.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from picl.errors import SpecError
from picl.spec import load
from tests.spec.conftest import BASE, KEY, SECRETS, run_picl

# TOML escapes, and what they become.
BREAKERS = {"\\n": "\n", "\\r": "\r", "\\u0000": "\x00", "\\t": "\t", "\\u001b": "\x1b",
            "\\u0085": "\x85", "\\u2028": "\u2028", "\\u001e": "\x1e"}
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
MULTILINE_KEYS = ("content",)  # a managed file's text is any number of lines


def _strings() -> list[tuple[int, int]]:
    """(line number, end of the literal's text) of every basic string written in BASE."""
    found = []
    for number, text in enumerate(BASE.splitlines(), start=1):
        if text.split("=")[0].strip() in MULTILINE_KEYS:
            continue
        found += [(number, m.end(1)) for m in _STRING.finditer(text)]
    return found


STRINGS = _strings()


def _with(escape: str, number: int, end: int) -> str:
    lines = BASE.splitlines(keepends=True)
    text = lines[number - 1]
    lines[number - 1] = text[:end] + escape + "x" + text[end:]
    return "".join(lines)


def test_the_spec_has_strings_to_break() -> None:
    assert len(STRINGS) >= 40


@pytest.mark.parametrize("escape", list(BREAKERS))
@pytest.mark.parametrize(("number", "end"), STRINGS, ids=[f"line{n}-{e}" for n, e in STRINGS])
def test_a_control_character_in_any_string_is_refused_on_its_line(
    repo: Path, escape: str, number: int, end: int
) -> None:
    (repo / "cluster.toml").write_text(_with(escape, number, end))
    with pytest.raises(SpecError) as caught:
        load(repo / "cluster.toml")
    assert number in [p.line for p in caught.value.problems], caught.value.lines()
    # Shown escaped, never as is: an error must not break or repaint the terminal either.
    assert not [line for line in caught.value.lines() if BREAKERS[escape] in line]


def test_a_file_content_may_have_many_lines(repo: Path) -> None:
    (repo / "cluster.toml").write_text(BASE.replace('content = "arrakis\\n"',
                                                    'content = "arrakis\\n\\tlab\\r\\n"'))
    assert load(repo / "cluster.toml").files[0].content == "arrakis\n\tlab\r\n"


INJECTIONS: list[tuple[str, str, str, str]] = [
    # (id, text in BASE, replacement, key path): the attacks the review tried
    ("key-extra-line", f'ssh_keys = ["{KEY}"]',
     f'ssh_keys = ["{KEY}\\ncommand=\\"/bin/sh\\" {KEY}"]', "users[0].ssh_keys[0]"),
    ("key-end-marker", f'ssh_keys = ["{KEY}"]', f'ssh_keys = ["{KEY}\\n# END picl"]',
     "users[0].ssh_keys[0]"),
    ("signer-extra-line", f'signed_by = ["{KEY}"]', f'signed_by = ["{KEY}\\r\\n* {KEY}"]',
     "agent.signed_by[0]"),
    ("ssid-line", 'ssid = "ato-2020"', 'ssid = "ato\\npsk=x"', "network.wifi.ssid"),
    ("what-bell", 'what = "LABEL=scratch"', 'what = "LABEL=x\\u0007"', "mounts[0].what"),
    ("source-nul", 'source = "files/issue"', 'source = "files/issue\\u0000"', "files[1].source"),
    ("upstream-line", 'branch = "main"', 'upstream = "git@host:a.git\\nx"', "agent.upstream"),
]


@pytest.mark.parametrize(("old", "new", "path"), [c[1:] for c in INJECTIONS],
                         ids=[c[0] for c in INJECTIONS])
def test_injections_are_located(repo: Path, old: str, new: str, path: str) -> None:
    assert old in BASE
    (repo / "cluster.toml").write_text(BASE.replace(old, new, 1))
    line = BASE.splitlines().index(next(t for t in BASE.splitlines() if old in t)) + 1
    result = run_picl("validate", cwd=repo)
    assert result.code == 1, result
    assert re.search(rf"^cluster\.toml:{line}:\d+: {re.escape(path)}: .* contains '\\",
                     result.err, re.MULTILINE), result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize("value", ["s3cr3t horse\nbattery", "s3cr3t\x00", "s3cr3t\u2028b"])
def test_a_secret_with_a_control_character_is_refused_unshown(repo: Path, value: str) -> None:
    escaped = value.encode("unicode_escape").decode().replace("\\x", "\\u00")
    (repo / "secrets.toml").write_text(SECRETS.replace('"correct horse battery staple"',
                                                       f'"{escaped}"'))
    result = run_picl("validate", cwd=repo)
    assert result.code == 1, result
    line = BASE.splitlines().index('psk = { secret = "wifi_psk" }') + 1
    assert re.search(rf"^cluster\.toml:{line}:\d+: network\.wifi\.psk\.secret: secret "
                     "'wifi_psk' in .* holds a control character", result.err, re.MULTILINE)
    assert "s3cr3t" not in result.err + result.out
