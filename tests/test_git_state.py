"""Issue 23.8: the manifest names every modified and untracked file exactly, the first one too
(``git status --porcelain`` lines start with a status column that may be a space)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kdutils import manifest


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=repo,
                   check=True, capture_output=True)


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = tmp_path / "repo"
    (repo / "kdutils").mkdir(parents=True)
    for name in ("a.py", "b.py", "old name.py", "z.py"):
        (repo / "kdutils" / name).write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "start")
    monkeypatch.setattr(manifest, "REPO_ROOT", repo)
    return repo


def test_one_unstaged_change_is_named_whole(repo: Path) -> None:
    # The instance: " M kdutils/finetune.py" came out as "dutils/finetune.py".
    (repo / "kdutils" / "a.py").write_text("x = 2\n")
    state = manifest.git_state()
    assert state["modified"] == ["kdutils/a.py"] and state["untracked"] == [] and state["dirty"]


def test_every_kind_of_change_is_named_whole(repo: Path) -> None:
    (repo / "kdutils" / "a.py").write_text("x = 2\n")          # " M" unstaged
    (repo / "kdutils" / "b.py").write_text("x = 3\n")
    _git(repo, "add", "kdutils/b.py")                           # "M " staged
    _git(repo, "mv", "kdutils/old name.py", "kdutils/new name.py")  # "R " rename, spaces in names
    (repo / "kdutils" / "z.py").unlink()                        # " D" deleted
    (repo / "notes é.txt").write_text("n\n")                    # "??" untracked, non-ASCII name
    state = manifest.git_state()
    assert sorted(state["modified"]) == ["kdutils/a.py", "kdutils/b.py", "kdutils/new name.py", "kdutils/z.py"]
    assert state["untracked"] == ["notes é.txt"]
    assert len(state["commit"]) == 40 and state["dirty"]


def test_a_clean_tree_is_clean(repo: Path) -> None:
    state = manifest.git_state()
    assert state["modified"] == [] and state["untracked"] == [] and not state["dirty"]
