"""The state file the agent writes and the LED service follows: parsing, staleness, writing."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from picl.reconciler.leds.frames import frame, status_frame
from picl.reconciler.leds.record import STATE_FILE, Record, read, write

# The state file's text -> the record it reads as. Nothing the agent writes breaks the LEDs.
PARSED = [
    ('{"state": "converged"}', Record("converged")),
    ('{"state": "applying", "expires": 1700000000}', Record("applying", expires=1700000000.0)),
    ('{"state": "failed", "expires": 1700000000.5}', Record("failed", expires=1700000000.5)),
    ('{"state": "converged", "nodes": ["converged", "drifted", "unreachable"]}',
     Record("converged", ("converged", "drifted", "unreachable"))),
    ('{"state": "converged", "nodes": ["converged", "on fire"]}',
     Record("converged", ("converged", "unknown"))),
    ('{"state": "sparkling"}', Record("unknown")),
    ('{"state": 3}', Record("unknown")),
    ('{"nodes": "converged"}', Record()),
    ('{"state": "stalled", "expires": "soon"}', Record("stalled")),
    ('{"state": "stalled", "expires": true}', Record("stalled")),
    ('{"state": "drifted", "revision": "4cfd227"}', Record("drifted")),
    ('["converged"]', Record()),
    ('{"state": "conv', Record()),
    ("", Record()),
]


@pytest.mark.parametrize(("text", "expected"), PARSED)
def test_parse(text: str, expected: Record) -> None:
    assert Record.from_json(text) == expected


@pytest.mark.parametrize("record", [
    Record(), Record("suspended"), Record("applying", expires=1.5),
    Record("converged", ("converged", "failed")),
])
def test_round_trip(record: Record) -> None:
    assert Record.from_json(record.to_json()) == record


def test_json_leaves_out_what_is_not_set() -> None:
    assert json.loads(Record("failed").to_json()) == {"state": "failed"}


def test_a_record_holds_only_known_states() -> None:
    with pytest.raises(ValueError, match="unknown LED state 'green'"):
        Record("green")
    with pytest.raises(ValueError, match="unknown LED state 'ok'"):
        Record("converged", ("ok",))


@pytest.mark.parametrize(("record", "now", "expected"), [
    (Record("converged"), 1e12, frame("converged", 3, 0.1)),
    (Record("converged", expires=100.0), 99.9, frame("converged", 3, 0.1)),
    (Record("converged", expires=100.0), 100.0, frame("unreachable", 3, 0.1)),
    (Record("failed", ("converged", "failed")), 0, status_frame(["converged", "failed"], 3, 0.1)),
    (Record("failed", ("failed",), expires=5.0), 6.0, frame("unreachable", 3, 0.1)),
])
def test_what_the_strip_shows(record: Record, now: float, expected: list) -> None:
    assert record.frame(3, 0.1, now) == expected


def test_the_state_file_lives_in_run() -> None:
    assert STATE_FILE == "/run/picl/leds.json"


def test_read_a_missing_file(tmp_path: Path) -> None:
    assert read(tmp_path / "leds.json") == Record()


def test_read_an_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "leds.json").write_bytes(b"\xff\xfe")
    assert read(tmp_path / "leds.json") == Record()
    assert read(tmp_path) == Record()


def test_write_then_read(tmp_path: Path) -> None:
    path = tmp_path / "run" / "picl" / "leds.json"
    write(Record("applying", ("converged", "applying"), 1.0), path)
    write(Record("converged", expires=2.0), path)
    assert read(path) == Record("converged", expires=2.0)
    assert os.listdir(path.parent) == ["leds.json"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
