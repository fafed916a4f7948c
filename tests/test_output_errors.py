"""Issue 23 (minor): a full disk or an unwritable output folder ends the pipeline with one
``error:`` line naming the path and the OS error; a failing notebook's message is never replaced
by the manifest's failure to be written."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from step_notebooks import write_step_notebook

from kdutils import pipeline


def _main(tmp_path: Path, notebooks: Path | None, monkeypatch: pytest.MonkeyPatch, output_root: Path) -> int:
    if notebooks is not None:
        run = pipeline.run_pipeline
        monkeypatch.setattr(pipeline, "run_pipeline", lambda *a, **k: run(*a, **k, notebook_dir=notebooks))
    return pipeline.main(["run", "--profile", "smoke", "--output-root", str(output_root), "--no-report"])


def _full_disk(path: Path, *_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device", str(path))


def test_an_output_folder_that_cannot_be_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    # Real: /proc takes no new folders, not even from root (chmod would not stop root).
    code = _main(tmp_path, None, monkeypatch, Path("/proc/kd-no-such-output"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith("error: /proc/kd-no-such-output") and "No such file or directory" in err[0]


def test_a_full_disk_when_the_manifest_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    write_step_notebook(nbs / "01_first.ipynb", "x = 1")
    monkeypatch.setattr(pipeline, "write_manifest", lambda run, *a, **k: _full_disk(run.manifest_path))
    code = _main(tmp_path, nbs, monkeypatch, tmp_path / "out")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert f"{tmp_path / 'out' / 'smoke' / 'manifest.json'}: No space left on device" in err[0]


def test_a_failing_notebook_stays_the_message_when_the_manifest_fails_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    write_step_notebook(nbs / "01_first.ipynb", "raise ValueError('the notebook broke')")
    monkeypatch.setattr(pipeline, "write_manifest", lambda run, *a, **k: _full_disk(run.manifest_path))
    code = _main(tmp_path, nbs, monkeypatch, tmp_path / "out")
    err = capsys.readouterr().err
    # The notebook failure's own message (its first line names notebook, cell and error), then the manifest's.
    assert code == 1 and "Traceback" not in err, err
    assert err.startswith("error: 01_first failed in code cell 2") and "the notebook broke" in err
    assert err.rstrip().endswith(f"the manifest was not written either: {tmp_path / 'out' / 'smoke' / 'manifest.json'}"
                                 ": No space left on device")
