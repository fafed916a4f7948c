"""The end-to-end smoke study, started in the background as soon as a test that needs it is collected.

Every notebook of the smoke profile through papermill takes minutes. It runs in a process of its
own while the rest of the suite runs, and its tests wait for it: most of the suite waits on
servers, sockets and child processes rather than computing, so the two overlap well even on two
cores. The study's environment is the one pytest started with (before any test injects a CPU
class), so it runs in the real machine's numeric mode, as ``make study`` would.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from kdutils.study.files import REPO_ROOT

PROFILE = "smoke"


def tree_digest(root: Path) -> str:
    """One sha256 over every file's relative path and bytes under ``root``."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@dataclass
class BackgroundStudy:
    """``python -m kdutils.pipeline run --profile smoke`` into ``output_root``, running on its own."""

    output_root: Path
    paper_before: str  # digest of paper/ when the study started: a smoke run never writes there
    process: subprocess.Popen
    log: Path

    @classmethod
    def start(cls, output_root: Path) -> BackgroundStudy:
        """Start the study (in a session of its own, so :meth:`stop` reaches the notebook kernels)."""
        paper_before = tree_digest(REPO_ROOT / "paper")
        log = output_root / "pipeline-output.log"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "kdutils.pipeline", "run", "--profile", PROFILE, "--output-root", str(output_root)],
                cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return cls(output_root, paper_before, process, log)

    @property
    def run(self) -> Path:
        """The run folder, ``<output_root>/smoke``."""
        return self.output_root / PROFILE

    def wait(self, timeout: float = 3600) -> int:
        """Block until the study ends; its exit code (raises ``subprocess.TimeoutExpired``)."""
        return self.process.wait(timeout=timeout)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines the pipeline printed (for a failure message)."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Kill the study and its kernels if it is still running (an interrupted test session)."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()
