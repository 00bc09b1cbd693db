"""The spec over valid-TOML mutants of the reference: valid, or located errors, never a crash.

Each case is numbered; `mutant(N)` gives the same text every run. A failure prints the case's
number and text. Replay one with `PICL_FUZZ_FIRST=N PICL_FUZZ_CASES=1 pytest
tests/spec/test_fuzz.py`, or write it out and validate it:
`python -c 'from tests.spec.mutants import mutant; print(mutant(N), end="")' > x.toml`.
PICL_FUZZ_CASES runs more (the suite runs 2500; `picl validate` runs on 24 of them).
"""

from __future__ import annotations

import os
import re
import subprocess
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from picl.errors import SpecError
from picl.spec import load
from picl.spec.locate import Loc, positions
from tests.spec.conftest import SECRETS, picl_command
from tests.spec.mutants import mutant, parsed

CASES = int(os.environ.get("PICL_FUZZ_CASES", "2500"))
FIRST = int(os.environ.get("PICL_FUZZ_FIRST", "0"))
CLI_CASES = 24  # each a process of its own: a sample, spread over the cases
LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<rest>.+)$")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A directory as a cluster repository: secrets beside the spec, one source file."""
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "issue").write_text("arrakis\n")
    (tmp_path / "secrets.toml").write_text(SECRETS)
    (tmp_path / "secrets.toml").chmod(0o600)  # picl refuses a secrets file others can read
    return tmp_path


def key_paths(data: dict[str, Any]) -> list[Loc]:
    """Every key and array element of the document, by its path."""
    found: list[Loc] = []
    stack: list[tuple[Loc, Any]] = [((), data)]
    while stack:
        loc, item = stack.pop()
        if loc:
            found.append(loc)
        if isinstance(item, dict):
            stack.extend(((*loc, name), sub) for name, sub in item.items())
        elif isinstance(item, list):
            stack.extend(((*loc, i), sub) for i, sub in enumerate(item))
    return found


def located(line: str, file: str, text: str) -> str | None:
    """What is wrong with one line of `validate`'s errors, or None when it is well located."""
    match = LOCATED.match(line)
    if not match or match["file"] != file:
        return f"not FILE:LINE:COL: key: message: {line!r}"
    lines = text.split("\n")
    row, col = int(match["line"]), int(match["col"])
    if not 1 <= row <= len(lines) or not 1 <= col <= len(lines[row - 1]) + 1:
        return f"points outside the file: {line!r}"
    if not line.isprintable():
        return f"holds a line break or control character: {line!r}"
    return None


def problems(spec: Path, text: str) -> list[str]:
    """What is wrong with how the spec's reader treats this text (nothing, when it is right)."""
    spec.write_text(text)
    wrong: list[str] = []
    for check in (loaded, unlocated):
        try:
            wrong.extend(check(spec, text))
        except Exception:  # noqa: BLE001 - a crash is what this test looks for
            wrong.append(traceback.format_exc(limit=-4))
    return wrong


def loaded(spec: Path, text: str) -> list[str]:
    """The loader's verdict: valid, or problems each on a line and column of the file."""
    try:
        load(spec)
    except SpecError as exc:
        if not exc.problems:
            return ["an invalid spec with no problem named"]
        return [w for p in exc.problems if (w := located(str(p), str(spec), text))]
    return []


def unlocated(spec: Path, text: str) -> list[str]:
    """Keys of the document the locator did not find (it must find them all)."""
    data = parsed(text)
    where = positions(text)
    if data is None or where.too_deep is not None:
        return []
    missed = [loc for loc in key_paths(data) if loc not in where.where]
    return [f"key path not located: {loc!r}" for loc in missed[:3]]


def report(seed: int, text: str, wrong: list[str]) -> str:
    return f"case {seed}:\n" + "\n".join(wrong) + f"\n--- text of case {seed}:\n{text}\n---"


def test_mutants_are_valid_or_located(repo: Path) -> None:
    failures = []
    for seed in range(FIRST, FIRST + CASES):
        text = mutant(seed)
        wrong = problems(repo / "cluster.toml", text)
        if wrong:
            failures.append(report(seed, text, wrong))
    shown = "\n\n".join(failures[:3])
    assert not failures, f"{len(failures)} of {CASES} mutants mishandled; the first:\n{shown}"


def test_validate_exits_0_or_1_with_located_errors(repo: Path) -> None:
    seeds = sorted({FIRST + k * CASES // CLI_CASES for k in range(CLI_CASES)})
    with ThreadPoolExecutor(max_workers=3) as pool:
        failures = [f for f in pool.map(lambda seed: validate(repo, seed), seeds) if f]
    assert not failures, "\n\n".join(failures[:3])


def validate(repo: Path, seed: int) -> str | None:
    """`picl validate` on one case, as a user runs it: what went wrong, or None."""
    spec = repo / f"case-{seed}.toml"
    text = mutant(seed)
    spec.write_text(text)
    command = [*picl_command(), "--spec", str(spec), "validate"]
    done = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=120)
    wrong = []
    if done.returncode == 0:
        if "valid" not in done.stdout:
            wrong.append(f"exit 0 without 'valid': {done.stdout!r}")
    elif done.returncode == 1:
        lines = done.stderr.removesuffix("\n").split("\n")
        wrong.extend(w for line in lines if (w := located(line, str(spec), text)))
    else:
        wrong.append(f"exit {done.returncode}")
    if "Traceback" in done.stdout + done.stderr or "internal error" in done.stderr:
        wrong.append(f"crashed: {done.stderr}")
    return report(seed, text, wrong) if wrong else None
