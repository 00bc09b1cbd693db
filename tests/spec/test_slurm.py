"""[slurm] as written: what loads, its defaults, and every mistake reported on its line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from picl.spec import load
from tests.spec.conftest import BASE, assert_reported_on_marked_line, run_picl

ROOT = Path(__file__).resolve().parents[2]
TIME = '[time]\nservers = ["0.debian.pool.ntp.org"]\nserve = true\n'  # BASE's
SLURM = """
[slurm]
controller = "node0"
nodes = ["node1", "node2"]
slots = 2
partition = "pis"
max_time = "1h30m"
"""


def spec(text: str = SLURM, time: str = TIME) -> str:
    """BASE with `text` added and its [time] table replaced by `time`."""
    assert TIME in BASE
    return BASE.replace(TIME, time, 1) + text


def test_the_example_adds_to_the_reference_cluster(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text((ROOT / "cluster.toml").read_text()
                    + (ROOT / "examples" / "slurm.toml").read_text())
    slurm = load(path).slurm
    assert slurm is not None
    assert (slurm.nodes, slurm.partition, slurm.max_time_seconds) == ("all", "main", 24 * 3600)


def test_defaults(repo: Path) -> None:
    (repo / "cluster.toml").write_text(spec("\n[slurm]\n"))
    slurm = load(repo / "cluster.toml").slurm
    assert slurm is not None
    assert (slurm.controller, slurm.nodes, slurm.slots, slurm.partition, slurm.max_time) == (
        None, "all", None, "main", None)


def test_as_written(repo: Path) -> None:
    (repo / "cluster.toml").write_text(spec())
    slurm = load(repo / "cluster.toml").slurm
    assert slurm is not None
    assert (slurm.controller, slurm.nodes, slurm.slots, slurm.partition) == (
        "node0", ["node1", "node2"], 2, "pis")
    assert slurm.max_time_seconds == 5400


def test_without_slurm_there_is_none(repo: Path) -> None:
    (repo / "cluster.toml").write_text(BASE)
    assert load(repo / "cluster.toml").slurm is None


# (id, text in SLURM, replacement marked with #!, key path reported)
CASES = [
    ("controller-unknown", 'controller = "node0"', 'controller = "node9" #!', "slurm.controller"),
    ("controller-all", 'controller = "node0"', 'controller = "all" #!', "slurm.controller"),
    ("controller-list", 'controller = "node0"', 'controller = ["node0"] #!', "slurm.controller"),
    ("nodes-unknown", 'nodes = ["node1", "node2"]', 'nodes = ["node1", "nod2"] #!',
     "slurm.nodes[1]"),
    ("nodes-empty", 'nodes = ["node1", "node2"]', "nodes = [] #!", "slurm.nodes"),
    ("nodes-word", 'nodes = ["node1", "node2"]', 'nodes = "some" #!', "slurm.nodes"),
    ("slots-zero", "slots = 2", "slots = 0 #!", "slurm.slots"),
    ("slots-text", "slots = 2", 'slots = "2" #!', "slurm.slots"),
    ("partition-space", 'partition = "pis"', 'partition = "my pis" #!', "slurm.partition"),
    ("partition-empty", 'partition = "pis"', 'partition = "" #!', "slurm.partition"),
    ("partition-comma", 'partition = "pis"', 'partition = "a,b" #!', "slurm.partition"),
    ("max-time-words", 'max_time = "1h30m"', 'max_time = "90 minutes" #!', "slurm.max_time"),
    ("max-time-seconds", 'max_time = "1h30m"', 'max_time = "30s" #!', "slurm.max_time"),
    ("max-time-number", 'max_time = "1h30m"', "max_time = 90 #!", "slurm.max_time"),
    ("typo", "slots = 2", "slot = 2 #!", "slurm.slot"),
]


@pytest.mark.parametrize(("old", "new", "path"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_mistake_is_reported_on_its_line(repo: Path, old: str, new: str, path: str) -> None:
    assert old in SLURM
    assert_reported_on_marked_line(repo, spec(SLURM.replace(old, new, 1)), path)


@pytest.mark.parametrize(("time", "path", "line"), [
    ("", "slurm", "[slurm]"),  # no [time] at all
    ("[time]\nserve = false\n", "time.serve", "serve = false"),
    ('[time]\nservers = ["pool.example.org"]\n', "time", "[time]"),
], ids=["no-time", "not-served", "serve-left-out"])
def test_slurm_needs_the_clusters_one_clock(repo: Path, time: str, path: str, line: str) -> None:
    text = spec(time=time)
    (repo / "cluster.toml").write_text(text)
    result = run_picl("validate", cwd=repo)
    assert result.code == 1, result
    number = text.split("\n").index(line) + 1
    assert re.search(rf"^cluster\.toml:{number}:\d+: {re.escape(path)}: .*munge", result.err,
                     re.MULTILINE), result.err
