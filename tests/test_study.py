"""End to end: the smoke profile through every notebook, as `make study PROFILE=smoke` runs it."""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cpu_classes import as_the_machine_is
from smoke_study import BackgroundStudy, tree_digest

from kdutils import pipeline
from kdutils.machine import resolve_precision
from kdutils.study.config import load_profile
from kdutils.study.files import REPO_ROOT, read_json
from kdutils.study.steps import discover_steps

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def real_cpu():
    """The smoke study runs in this machine's own numeric mode, as `make study` would (every test
    here, so that a rerun of a notebook finds the caches the study wrote)."""
    with pytest.MonkeyPatch.context() as mp:
        as_the_machine_is(mp)
        yield


@pytest.fixture(scope="module")
def smoke_run(smoke_study: BackgroundStudy) -> tuple[Path, str, str]:
    """The smoke study's run folder, and digests of paper/ before and after it."""
    return smoke_study.run, smoke_study.paper_before, tree_digest(REPO_ROOT / "paper")


def test_every_notebook_ran_and_exported(smoke_run: tuple[Path, str, str]) -> None:
    run, _, _ = smoke_run
    steps = discover_steps()
    assert [s.number for s in steps] == ["01", "02", "03", "04", "05", "06"]
    manifest = read_json(run / "manifest.json")
    for step in steps:
        assert (run / "notebooks" / f"{step.name}.ipynb").exists()
        assert (run / "reports" / f"{step.name}.html").stat().st_size > 1000
        assert (run / "reports" / f"{step.name}.reader.html").exists()
        assert manifest["notebooks"][step.name]["status"] == "ran"
    assert manifest["inputs"], "manifest records sha256 of the input files"
    assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in manifest["inputs"].values())


def test_summary_has_every_contract_key(smoke_run: tuple[Path, str, str]) -> None:
    run, _, _ = smoke_run
    s = read_json(run / "summary.json")
    assert s["data"]["dataset"] == "rotten_tomatoes" and s["data"]["num_labels"] == 2
    for key in ("accuracy", "macro_f1", "ece", "params", "size_mb", "train_seconds"):
        assert key in s["models"]["teacher"]
        assert key in s["models"]["teacher_L2"]
    for name in ("student_baseline", "student_original", "tfidf_logreg", "student_distilled"):
        m = s["models"][name]
        for key in ("accuracy_mean", "accuracy_std", "accuracy_ci95", "macro_f1_mean", "per_seed", "params", "size_mb"):
            assert key in m, (name, key)
    assert len(s["models"]["student_baseline"]["per_seed"]) == 2
    assert "teacher_agreement" in s["models"]["student_distilled"]
    for key in ("gain_points_mean", "gain_ci95", "p_value", "transfer_set_size", "loss", "alpha", "temperature",
                "ablation"):
        assert key in s["distillation"], key
    assert s["inference"] and s["serving"]
    # The mode detection picks on this machine ran, and every record of it says so.
    mode = resolve_precision("auto").mode
    assert read_json(run / "manifest.json")["teacher_precision"]["mode"] == mode
    assert read_json(run / "models" / "teacher" / "kdmodel.json")["training"]["precision"] == mode
    assert s["models"]["teacher"]["precision"] == s["models"]["teacher_L2"]["precision"] == mode
    assert s["distillation"]["teacher_scoring"]["precision"] == mode
    assert s["inference"]["teacher"]["torch"]["precision"] == mode
    assert s["batch_scoring"]["teacher_precision"] == mode


def test_batch_scoring_section_and_its_targets(smoke_run: tuple[Path, str, str]) -> None:
    run, _, _ = smoke_run
    s = read_json(run / "summary.json")
    b = s["batch_scoring"]
    profile = load_profile("smoke")
    # The profile's corpus, the teacher on its subset, every configuration of notebook 06.
    assert b["corpus_sentences"] == profile.batch.corpus_sentences
    runs = {r["name"]: r for r in b["runs"]}
    assert set(runs) == {"student_onnx_local_1", "student_onnx_local_2", "student_onnx_ray_2",
                         "student_int8_local_2", "teacher_local_2", "teacher_onnx_local_2",
                         *(f"peer_b{n}" for n in profile.batch.peer_batch_sizes)}
    for name, r in runs.items():
        expected = profile.batch.teacher_sentences if name.startswith(("teacher", "peer")) else b["corpus_sentences"]
        assert r["sentences"] == expected, name
        assert r["per_core_per_s"] == pytest.approx(r["sentences_per_s"] / r["cores"])
    assert runs["student_onnx_ray_2"]["ray_init_s"] is not None and runs["student_onnx_local_2"]["ray_init_s"] is None
    # FLOPs from the model (not a constant), and the GFLOP/s follow from them.
    assert 1e6 < b["flops_per_sentence"] < 1e8
    student = runs["student_onnx_local_2"]
    assert student["gflops_per_core"] == pytest.approx(student["per_core_per_s"] * b["flops_per_sentence"] / 1e9)
    assert b["engines_identical"] is True and b["compared_rows"] == b["corpus_sentences"]
    targets = s["targets"]["batch_scoring"]
    assert len(targets) == 4 and all(isinstance(t["met"], bool) for t in targets)
    assert targets[3]["met"] is True  # identical engines
    paper = (run / "paper" / "paper.md").read_text()
    assert "#### Batch scoring, file to file" in paper and "figures/batch_scoring.png" in paper


def test_reports_and_paper_render_without_touching_published_paper(smoke_run: tuple[Path, str, str]) -> None:
    run, paper_before, paper_after = smoke_run
    assert paper_before == paper_after, "a smoke run never writes into paper/"
    index = run / "reports" / "index.html"
    paper_html = run / "paper" / "paper.html"
    assert index.exists() and paper_html.exists()
    for page in (index, paper_html):
        for link in re.findall(r'(?:href|src)="([^"#]+)"', page.read_text()):
            if link.startswith(("http://", "https://", "data:", "mailto:")):
                continue
            assert (page.parent / link).exists(), f"{page.name} links a missing file: {link}"


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (papermill's kernel starts in a session of its own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def test_a_run_killed_in_notebook_04_resumes_without_retraining(smoke_run: tuple[Path, str, str]) -> None:
    run, _, _ = smoke_run
    cache = run / "cache" / "distill_runs"
    for old in cache.glob("*.pt"):
        old.unlink()  # as if notebook 04 had not trained any student yet
    args = ["run", "--profile", "smoke", "--output-root", str(run.parent), "--only", "04", "--no-report"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "kdutils.pipeline", *args, "--force"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None and not list(cache.glob("*.pt")):
        time.sleep(0.1)
    for pid in [proc.pid, *_descendants(proc.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in cache.glob("*.pt")}
    assert finished, "the kill came after notebook 04 had finished at least one student"
    assert not (run / ".state" / "04_distillation.json").exists(), "a killed notebook is not marked done"

    assert pipeline.main(args) == 0, "the same command finishes the run"
    for path, stamp in finished.items():
        assert path.stat().st_mtime_ns == stamp, f"{path.name} was retrained instead of read back"
    assert read_json(run / ".state" / "04_distillation.json")["key"]
