"""The status store: atomic files, a bounded history, a damaged file survived."""

from __future__ import annotations

import grp
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from picl.reconciler import status as st
from picl.reconciler.client import read_records
from picl.reconciler.paths import Paths
from picl.reconciler.status import HISTORY, Result, Status
from picl.reconciler.store import Store
from tests.nobody import as_nobody, open_directory

T0 = 1_800_000_000.0


def finished_cycle(status: Status, n: int) -> Status:
    status = st.observed(st.began(status, "interval", T0 + n), "a" * 40, attempted=True)
    return st.finished(status, Result("a" * 40, "enforce", ()), T0 + n + 1, T0 + n + 300)


def test_nothing_yet(tmp_path) -> None:  # noqa: ANN001
    store = Store(Paths(tmp_path))
    assert store.status() == Status()
    assert store.history() == []


def test_history_is_bounded_and_each_cycle_kept_once(tmp_path) -> None:  # noqa: ANN001
    store = Store(Paths(tmp_path))
    status = Status(branch="main")
    for n in range(HISTORY + 5):
        status = finished_cycle(status, n)
        store.save(status)
        store.save(replace(status, updated=T0 + n + 2))  # saved again: not a new cycle
    history = store.history()
    assert len(history) == HISTORY
    assert [c.number for c in history] == list(range(6, HISTORY + 6))
    assert store.status() == replace(status, updated=T0 + HISTORY + 4 + 2)


def test_a_running_cycle_is_not_history_yet(tmp_path) -> None:  # noqa: ANN001
    store = Store(Paths(tmp_path))
    store.save(st.began(Status(), "push", T0))
    assert store.history() == []
    assert store.status().cycle is not None


def test_a_damaged_file_starts_afresh(tmp_path) -> None:  # noqa: ANN001
    paths = Paths(tmp_path)
    paths.state.mkdir(parents=True)
    paths.status.write_text('{"cluster": "arr')
    paths.history.write_text("[1, 2")
    store = Store(paths)
    assert store.status() == Status()
    assert store.history() == []
    store.save(finished_cycle(Status(), 1))
    assert store.status().cycle is not None
    assert not [p.name for p in paths.state.iterdir() if p.name.startswith(".")]  # no leftovers


def test_the_records_are_root_and_adm_s_alone(tmp_path) -> None:  # noqa: ANN001
    store = Store(Paths(tmp_path))
    for n in range(2):
        store.save(finished_cycle(Status(), n))
    adm = grp.getgrnam("adm").gr_gid
    for path in (store.paths.status, store.paths.history):
        info = path.stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o640, 0, adm)
    assert not [p.name for p in store.paths.state.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("before, after", [
    (0o644, 0o640), (0o666, 0o640), (0o604, 0o600), (0o755, 0o640), (0o600, 0o600),
    (0o640, 0o640), (0o400, 0o400),
])
def test_records_an_older_picl_left_open_are_closed_at_start(tmp_path, before: int,  # noqa: ANN001
                                                             after: int) -> None:
    paths = Paths(tmp_path)
    paths.state.mkdir(parents=True)
    for path in (paths.status, paths.history):
        path.write_text("{}")
        path.chmod(before)
    Store(paths)  # the agent starts: no cycle yet
    assert [stat.S_IMODE(p.stat().st_mode) for p in (paths.status, paths.history)] == [after] * 2


@pytest.fixture
def open_root() -> Iterator[Path]:
    """A root anyone may look into, as / is: the files below keep their own modes."""
    with open_directory(0o755) as root:
        yield root


def test_a_person_who_may_not_read_them_is_told_so(open_root: Path) -> None:
    paths = Paths(open_root)
    Store(paths).save(finished_cycle(Status(), 1))
    read = as_nobody("sh", "-c", read_records(paths))
    assert read.returncode == 1 and read.stdout == ""
    assert read.stderr == (f"{paths.status}: only root and the adm group may read it: "
                           "run picl status with sudo\n")


def test_records_not_there_yet_read_as_null(tmp_path) -> None:  # noqa: ANN001
    read = subprocess.run(["sh", "-c", read_records(Paths(tmp_path))], capture_output=True,
                          text=True, timeout=60)
    assert (read.returncode, read.stdout) == (0, "null\n\nnull\n\n")
