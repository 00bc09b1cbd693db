"""The secrets file: private when read, written whole under a lock, never by a plan."""

from __future__ import annotations

import base64
import multiprocessing
import os
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

from picl.errors import PiclError
from picl.spec import load
from picl.spec.secrets import check_private, ensure
from tests.spec.conftest import BASE, picl_command, run_picl

EXISTING = '# the Wi-Fi of the lab\nwifi_psk = "correct horse battery staple"\n'


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ensure_creates_the_file_600_with_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "secrets.toml"
    assert ensure(path, "token", lambda: "abc") == ("abc", True)
    assert _mode(path) == 0o600
    assert tomllib.loads(path.read_text()) == {"token": "abc"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secrets.toml"]


def test_ensure_keeps_every_byte_and_adds_the_secret_after(tmp_path: Path) -> None:
    path = tmp_path / "secrets.toml"
    path.write_text(EXISTING.rstrip("\n"))  # no newline at the end
    path.chmod(0o600)
    private = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\n"
    assert ensure(path, "cluster_key_federico", lambda: private) == (private, True)
    text = path.read_text()
    assert text.startswith(EXISTING)
    assert tomllib.loads(text) == {"wifi_psk": "correct horse battery staple",
                                   "cluster_key_federico": private}
    assert _mode(path) == 0o600


def test_a_secret_already_there_is_returned_and_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "secrets.toml"
    path.write_text(EXISTING)
    path.chmod(0o600)
    before = path.stat()

    def never() -> str:
        raise AssertionError("generated a secret that was already there")

    assert ensure(path, "wifi_psk", never) == ("correct horse battery staple", False)
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.parametrize("value", [
    "line\n''' = 'x'\n", 'quote " and \\ backslash', "tab\tand\x1b escape", "ünïcode 🔑",
    "no newline at the end\nof two lines",
], ids=["triple-quote", "quotes", "control", "unicode", "lines"])
def test_any_value_is_written_as_toml_that_reads_back_the_same(tmp_path: Path,
                                                              value: str) -> None:
    path = tmp_path / "secrets.toml"
    ensure(path, "first", lambda: "one")
    ensure(path, "odd", lambda: value)
    assert tomllib.loads(path.read_text()) == {"first": "one", "odd": value}


def test_a_file_that_is_not_toml_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "secrets.toml"
    path.write_text("wifi_psk = \n")
    path.chmod(0o600)
    with pytest.raises(PiclError, match="not valid TOML"):
        ensure(path, "cluster_key_federico", lambda: "key\n")
    assert path.read_text() == "wifi_psk = \n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secrets.toml"]


def _add(path: str, value: str, results: multiprocessing.Queue) -> None:
    results.put(ensure(Path(path), "cluster_key_federico", lambda: value))


def test_writers_at_once_agree_on_one_value(tmp_path: Path) -> None:
    path = tmp_path / "secrets.toml"
    path.write_text(EXISTING)
    path.chmod(0o600)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    writers = [context.Process(target=_add, args=(str(path), f"key {i}\n", results))
               for i in range(8)]
    for writer in writers:
        writer.start()
    got = [results.get(timeout=60) for _ in writers]
    for writer in writers:
        writer.join()
    stored = tomllib.loads(path.read_text())["cluster_key_federico"]
    assert {value for value, _ in got} == {stored}
    assert [added for _, added in got].count(True) == 1
    assert path.read_text().count("cluster_key_federico") == 1


@pytest.mark.parametrize(("mode", "outcome"), [
    (0o600, "ok"), (0o400, "ok"), (0o640, "warning"), (0o660, "warning"),
    (0o644, "refused"), (0o604, "refused"), (0o602, "refused"), (0o666, "refused"),
])
def test_a_secrets_file_others_can_read_is_refused(tmp_path: Path, mode: int,
                                                   outcome: str) -> None:
    path = tmp_path / "secrets.toml"
    path.write_text(EXISTING)
    path.chmod(mode)
    warnings: list[str] = []
    if outcome == "refused":
        with pytest.raises(PiclError, match=rf"other users can read or change it \(mode {mode:o}\); "
                                            r"run `chmod 600 "):
            check_private(path, warnings.append)
        return
    check_private(path, warnings.append)
    assert len(warnings) == (outcome == "warning")
    assert all("its group can read it" in w for w in warnings)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_a_secrets_file_git_tracks_is_refused(repo: Path) -> None:
    _git(repo, "init", "-q")
    _git(repo, "add", "secrets.toml")
    result = run_picl("validate", cwd=repo)
    assert result.code == 1
    assert result.err.startswith("secrets.toml: tracked by git, so its secrets are in the "
                                 "repository's history; run `git rm --cached secrets.toml`")
    assert "correct horse" not in result.err
    _git(repo, "rm", "-q", "--cached", "secrets.toml")
    (repo / ".gitignore").write_text("secrets.toml\n")
    result = run_picl("validate", cwd=repo)
    assert result.code == 0 and result.err == "", result.err


def test_a_secrets_file_git_would_add_is_a_warning(repo: Path) -> None:
    _git(repo, "init", "-q")
    result = run_picl("validate", cwd=repo)
    assert result.code == 0
    assert "secrets.toml: in a git work tree that does not ignore it; add secrets.toml to " \
           ".gitignore" in result.err


def test_generate_creates_the_key_and_the_spec_still_loads(repo: Path) -> None:
    (repo / "secrets.toml").unlink()
    result = run_picl("secrets", "generate", cwd=repo)
    assert result.code == 0, result.err
    assert result.out.startswith("generated the cluster key of federico, kept in ")
    assert _mode(repo / "secrets.toml") == 0o600
    assert list(tomllib.loads((repo / "secrets.toml").read_text())) == ["cluster_key_federico"]
    # Only the key in the file: the secrets it lacks are warnings, as with no file at all.
    again = run_picl("secrets", "generate", cwd=repo)
    assert again.code == 0 and again.out.startswith("nothing to generate: ")
    assert "secret 'wifi_psk' is not in" in again.err
    cluster = load(repo / "cluster.toml")
    assert cluster.users[0].cluster_key


def test_generate_run_four_times_at_once_adds_one_key(repo: Path) -> None:
    before = (repo / "secrets.toml").read_text()
    runs = [subprocess.Popen([*picl_command(), "secrets", "generate"], cwd=repo, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    outputs = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0] * 4, outputs
    assert sum(out.startswith("generated ") for out, _ in outputs) == 1
    text = (repo / "secrets.toml").read_text()
    assert text.startswith(before) and text.count("cluster_key_federico") == 1
    assert "BEGIN OPENSSH PRIVATE KEY" in tomllib.loads(text)["cluster_key_federico"]
    assert sorted(os.listdir(repo)) == ["cluster.toml", "files", "secrets.toml"]


def test_generate_needs_no_key_when_no_user_wants_one(repo: Path) -> None:
    (repo / "cluster.toml").write_text(BASE.replace("cluster_key = true\n", ""))
    before = (repo / "secrets.toml").read_bytes()
    result = run_picl("secrets", "generate", cwd=repo)
    assert result.code == 0 and result.out.startswith("nothing to generate")
    assert (repo / "secrets.toml").read_bytes() == before


def test_a_link_to_the_secrets_stays_a_link(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "arrakis.toml").write_text(EXISTING)
    (kept / "arrakis.toml").chmod(0o600)
    link = tmp_path / "secrets.toml"
    link.symlink_to(kept / "arrakis.toml")
    ensure(link, "token", lambda: "abc")
    assert link.is_symlink()
    assert tomllib.loads((kept / "arrakis.toml").read_text())["token"] == "abc"



def test_generate_makes_the_munge_key_with_slurm(repo: Path) -> None:
    (repo / "cluster.toml").write_text(BASE + "\n[slurm]\n")
    before = (repo / "secrets.toml").read_text()
    result = run_picl("secrets", "generate", cwd=repo)
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1].startswith("generated the munge key, kept in ")
    text = (repo / "secrets.toml").read_text()
    key = tomllib.loads(text)["munge_key"]
    assert text.startswith(before) and len(base64.b64decode(key)) == 1024
    assert key not in result.out + result.err
    again = run_picl("secrets", "generate", cwd=repo)
    assert again.out.startswith("nothing to generate")
    assert tomllib.loads((repo / "secrets.toml").read_text())["munge_key"] == key
