"""The converge lock: one apply at a time per cluster, whoever starts it."""

from __future__ import annotations

from pathlib import Path

import pytest

from picl.deploy.lock import converging
from picl.errors import PiclError


def test_a_second_converge_of_the_same_cluster_is_refused(tmp_path: Path) -> None:
    with (converging("arrakis", tmp_path), pytest.raises(PiclError, match="another apply"),
          converging("arrakis", tmp_path)):
        pass


def test_other_clusters_and_labs_converge_side_by_side(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    with converging("arrakis", tmp_path), converging("caladan", tmp_path):
        monkeypatch.setenv("PICL_IN_LAB", "second")
        with converging("arrakis", tmp_path):
            pass


def test_the_lock_is_free_again_after_use(tmp_path: Path) -> None:
    with converging("arrakis", tmp_path):
        pass
    with converging("arrakis", tmp_path):
        pass
