"""Issue 23.2: two pipeline processes on one run folder. The second refuses at once with one
line naming the lock holder's PID; the first finishes with valid files; a killed holder leaves
no stale lock; the lock is released when a run ends, also when it fails."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
from step_notebooks import write_step_notebook

from kdutils import pipeline
from kdutils.study import run_lock
from kdutils.study.runs import RunDir

REPO = Path(__file__).resolve().parents[1]




def _python(code: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _hold(run_root: Path) -> subprocess.Popen:
    """Another process holding the run folder's lock until it is killed."""
    proc = _python(f"""
        import time
        from pathlib import Path
        from kdutils.study.run_lock import run_lock
        with run_lock(Path({str(run_root)!r})):
            print("locked", flush=True)
            time.sleep(120)
        """)
    assert proc.stdout.readline().strip() == "locked", proc.stderr.read()
    return proc


def test_the_cli_refuses_at_once_naming_the_holder_and_a_killed_holder_leaves_no_lock(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    run_root = out / "smoke"
    holder = _hold(run_root)
    try:
        started = time.monotonic()
        code = pipeline.main(["run", "--profile", "smoke", "--output-root", str(out), "--only", "01"])
        took = time.monotonic() - started
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1
        assert len(err) == 1 and err[0].startswith("error: ") and f"PID {holder.pid}" in err[0], err
        assert str(run_root) in err[0] and "Traceback" not in err[0]
        assert took < 20  # refused before any notebook starts (the kernel alone takes longer)
        assert not (run_root / "notebooks").exists() or not any((run_root / "notebooks").iterdir())
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    # flock dies with its process: no stale lock after a kill -9
    with run_lock.run_lock(run_root) as lock:
        assert lock.read_text().strip() == str(os.getpid())
    assert lock.read_text() == ""


def test_the_lock_is_released_when_a_run_ends_or_fails(tmp_path: Path) -> None:
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    write_step_notebook(nbs / "01_first.ipynb", "raise ValueError('boom')")
    out = tmp_path / "out"
    with pytest.raises(pipeline.PipelineError, match="boom"):
        pipeline.run_pipeline("smoke", output_root=out, notebook_dir=nbs, report=False)
    write_step_notebook(nbs / "01_first.ipynb", "x = 1")
    run = pipeline.run_pipeline("smoke", output_root=out, notebook_dir=nbs, report=False)
    with run_lock.run_lock(run.root):
        with pytest.raises(run_lock.RunLocked, match=f"PID {os.getpid()}"):
            with run_lock.run_lock(run.root):
                pass


def test_two_pipeline_processes_on_one_run_folder(tmp_path: Path) -> None:
    # The reproduction: the same `--only 01 --force` twice, 0.3 s apart, on one output root.
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    write_step_notebook(nbs / "01_first.ipynb", "import time\ntime.sleep(2)\nprint('slept')")
    out = tmp_path / "out"
    code = f"""
        import sys
        from pathlib import Path
        from kdutils import pipeline
        pipeline.run_pipeline = (lambda run=pipeline.run_pipeline: lambda *a, **k: run(
            *a, **k, notebook_dir=Path({str(nbs)!r})))()
        sys.exit(pipeline.main(["run", "--profile", "smoke", "--output-root", {str(out)!r}, "--only", "01",
                                "--force", "--no-report"]))
        """
    first = _python(code)
    time.sleep(0.3)
    second = _python(code)
    results = [(p, *p.communicate(timeout=300)) for p in (first, second)]
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes == [0, 1], [(p.returncode, e[-2000:]) for p, _, e in results]
    (winner, _, _), (loser, _, loser_err) = sorted(results, key=lambda r: r[0].returncode)
    lines = [ln for ln in loser_err.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"PID {winner.pid}" in lines[0], loser_err
    run = RunDir(out / "smoke")
    executed = run.notebooks / "01_first.ipynb"
    nb = nbformat.read(executed, as_version=4)  # valid JSON, the whole executed notebook
    assert "slept" in json.dumps(nb.cells[-1].outputs)
    assert not (run.notebooks / "01_first.partial.ipynb").exists()
    assert (run.state_dir / run_lock.LOCK_FILE).read_text() == ""
