"""The status store: atomic files, a bounded history, a damaged file survived."""

from __future__ import annotations

from dataclasses import replace

from picl.reconciler import status as st
from picl.reconciler.paths import Paths
from picl.reconciler.status import HISTORY, Result, Status
from picl.reconciler.store import Store

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
