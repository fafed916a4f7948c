"""Atomic writes: all or nothing, and the permissions an ordinary write would give; summary.json
written only when it fits the contract of kdutils.study.summary."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kdutils.study.files import atomic_dir, atomic_path, current_umask, write_json
from kdutils.study.runs import RunDir
from kdutils.study.summary import Summary, SummaryError

SMOKE = Path(__file__).resolve().parents[1] / "fixtures" / "smoke_summary.json"


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
    run.update_summary({"inference": None})
    assert _mode(run.summary_path) == 0o666 & ~umask


def test_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = write_json(tmp_path / "x.json", {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text().strip().startswith("{") and list(tmp_path.iterdir()) == [target]


# --------------------------------------------------------------------------- summary.json


def _sections() -> dict:
    """Real sections: the published run's data and student settings, a smoke run's serving."""
    published = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "published_summary_v1.json").read_text())
    smoke = json.loads(SMOKE.read_text())
    return {"data": published["data"], "student": published["student"],
            "inference": smoke["inference"], "serving": smoke["serving"]}


def test_good_sections_round_trip(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    assert run.summary() == Summary()  # before the first notebook
    sections = _sections()
    # numpy values from a notebook reach the file as plain JSON numbers (the numpy default).
    data = sections["data"] | {"n_test": np.int64(sections["data"]["n_test"]),
                               "mean_words_train": np.float64(sections["data"]["mean_words_train"])}
    run.update_summary({"data": data})
    for name in ("student", "inference", "serving"):
        run.update_summary({name: sections[name]})
    assert json.loads(run.summary_path.read_text()) == sections
    summary = run.summary()
    assert summary.dump() == sections and summary.data is not None and summary.data.n_test == 853
    # Notebook 05 resets its sections to null before writing them again.
    run.update_summary({"serving": None})
    assert run.summary().serving is None


@pytest.mark.parametrize(
    ("section", "expected", "notebook"),
    [
        ({"data": {"n_tset": 853}}, "data.n_tset: unknown key", "01_data"),
        ({"serving": {"peers": {"ours": {"1": {"p50_ms": "fast"}}}}},
         "serving.peers.ours.1.p50_ms: expected a number, got 'fast'", "05_deployment"),
        ({"student": {"batch_size": np.float64(64.0)}},
         "student.batch_size: expected an integer, got 64.0", "03_student"),
        ({"models": {"teacher_big": {}}}, "models: unknown model name(s) 'teacher_big'", None),
        ({"surprise": 1}, "surprise: unknown key", None),
    ],
)
def test_bad_section_raises_and_leaves_the_file(tmp_path: Path, section: dict, expected: str,
                                                notebook: str | None) -> None:
    run = RunDir(tmp_path / "run")
    sections = _sections()
    run.update_summary({"data": sections["data"], "student": sections["student"],
                        "serving": sections["serving"]})
    before = run.summary_path.read_bytes()
    with pytest.raises(SummaryError) as info:
        run.update_summary(section)
    message = str(info.value)
    assert message.startswith(f"{run.summary_path}: ") and expected in message, message
    assert "not written" in message
    if notebook:
        assert f"notebooks/{notebook}.ipynb" in message
    assert run.summary_path.read_bytes() == before
    assert [p.name for p in run.root.iterdir() if p.name.endswith(".tmp")] == []


def test_first_write_that_fails_leaves_no_file(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    with pytest.raises(SummaryError, match=r"data\.dataset: missing"):
        run.update_summary({"data": {"n_test": 3}})
    assert not run.summary_path.exists()


def test_run_layout_is_the_one_existing_runs_have(tmp_path: Path) -> None:
    # Caches and models of earlier runs are found again only where they were written: pin the layout.
    run = RunDir(tmp_path / "run")
    rel = {
        "models/teacher": run.model_dir("teacher"),
        "models/student_baseline/seed3": run.model_dir("student_baseline", 3),
        "models/onnx/student_distilled": run.onnx_dir("student_distilled"),
        "data/meta.json": run.data_meta_path,
        "data/transfer_set.parquet": run.transfer_set_path,
        "metrics/student_baseline_seed3_val.npz": run.predictions_path("student_baseline", "val", 3),
        "metrics/teacher_test.npz": run.predictions_path("teacher", "test"),
        "metrics/student_baseline_seed3_history.json": run.history_path("student_baseline", 3),
        "cache/teacher_logits": run.teacher_logits_cache,
        "cache/distill_runs": run.distill_cache,
        "cache/checkpoints/teacher_L2": run.checkpoint_dir("teacher_L2"),
        "logs/teacher_L2_train.log": run.train_log("teacher_L2"),
        "logs/pipeline.log": run.pipeline_log,
        "logs/serving": run.serving_logs,
        ".state": run.state_dir,
    }
    assert {k: v.relative_to(run.root).as_posix() for k, v in rel.items()} == {k: k for k in rel}


def test_paths_that_are_probed_create_nothing(tmp_path: Path) -> None:
    # Notebook 04 checks its upstream with these before anything is written; serve tells a run by models/.
    run = RunDir(tmp_path / "run")
    _ = (run.models, run.model_dir("teacher"), run.model_dir("student_baseline", 0), run.onnx_dir("teacher"),
         run.data_meta_path, run.predictions_path("student_baseline", "test", 0),
         run.history_path("student_baseline", 0), run.summary_path)
    assert not run.root.exists()
    assert run.cache.is_dir() and not run.models.exists()


def test_report_paths_are_read_without_creating_anything(tmp_path: Path) -> None:
    # The HTML index and the report read a run that may be half made: looking must not add folders.
    run = RunDir(tmp_path / "run")
    rel = {
        "reports/01_data.html": run.report_html("01_data"),
        "reports/01_data.reader.html": run.report_html("01_data", reader=True),
        "reports/index.html": run.index_html,
        "figures": run.figures_dir,
        "tables": run.tables_dir,
        "paper": run.paper_dir,
        "summary.json": run.summary_path,
        "manifest.json": run.manifest_path,
    }
    assert {k: v.relative_to(run.root).as_posix() for k, v in rel.items()} == {k: k for k in rel}
    assert run.reported_notebooks() == set() and run.read_manifest() == {}
    assert not run.root.exists()
    assert run.figures == run.figures_dir and run.figures_dir.is_dir()  # the writers' form creates it


def test_reported_notebooks_are_named_by_either_export(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    for path in (run.report_html("01_data"), run.report_html("02_teacher", reader=True), run.index_html):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("<p>")
    assert run.reported_notebooks() == {"01_data", "02_teacher"}


def test_deterministic_figures_are_the_same_bytes_twice(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    from kdutils.study.files import save_figure_files

    fig = Figure(figsize=(2, 1))
    fig.subplots().plot([0, 1], [1, 0])
    first = [p.read_bytes() for p in save_figure_files(fig, tmp_path / "a", "line", deterministic=True)]
    second = save_figure_files(fig, tmp_path / "b", "line", deterministic=True)
    assert [p.name for p in second] == ["line.png", "line.pdf"]
    assert [p.read_bytes() for p in second] == first
