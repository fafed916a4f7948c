"""Atomic writes: all or nothing, and the permissions an ordinary write would give."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from kdutils.runs import RunDir, atomic_dir, atomic_path, current_umask, write_json


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_reads_without_changing(umask: int) -> None:
    assert current_umask() == umask == current_umask()


def test_written_files_respect_the_umask(tmp_path: Path, umask: int) -> None:
    # issue 13.12's instance: every output was 0600, so a web server's user could not serve reports.
    target = write_json(tmp_path / "a" / "summary.json", {"x": 1})
    assert _mode(target) == 0o666 & ~umask
    with atomic_path(tmp_path / "report.html") as tmp:
        tmp.write_text("<p>")
    assert _mode(tmp_path / "report.html") == 0o666 & ~umask
    with atomic_dir(tmp_path / "models" / "teacher") as tmp:
        (tmp / "model.safetensors").write_bytes(b"x")
    assert _mode(tmp_path / "models" / "teacher") == 0o777 & ~umask
    assert _mode(tmp_path / "models" / "teacher" / "model.safetensors") == 0o666 & ~umask
    run = RunDir(tmp_path / "run")
    run.update_summary({"data": {"n": 1}})
    assert _mode(run.summary_path) == 0o666 & ~umask


def test_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = write_json(tmp_path / "x.json", {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text().strip().startswith("{") and list(tmp_path.iterdir()) == [target]
