"""The report: tables, paper, HTML index, publishing and the regeneration check.

What is under test here is the rendering, so the run is a fixture: a ``summary.json`` that
passes kdutils.study.summary's contract (built from a real smoke run's, see report_runs), a manifest
as the pipeline writes it, tiny real PNG/PDF figures made
with matplotlib, and the notebooks' HTML exports. The end-to-end smoke run (test_study.py)
covers the report on a real run.
"""

from __future__ import annotations

import copy
import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import report_runs  # noqa: E402

from kdutils import plots, report  # noqa: E402
from kdutils.report import anchors, distilled  # noqa: E402
from kdutils.report import reading as report_reading  # noqa: E402
from kdutils.report import rendering as report_render  # noqa: E402
from kdutils.report import results as report_results  # noqa: E402
from kdutils.report import tables as report_tables  # noqa: E402
from kdutils.serving import bench  # noqa: E402
from kdutils.study.files import REPO_ROOT, read_json, write_json
from kdutils.study.layout import default_output_root
from kdutils.study.runs import RunDir
from kdutils.study.summary import Summary, SummaryError, validate_summary  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")

# A valid summary of the default profile's shape (kdutils.study.summary's contract), built from a real
# smoke run's summary with round numbers the tests look for; see report_runs.
SUMMARY: dict = report_runs.study_summary()
NOTEBOOKS = report_runs.NOTEBOOKS


def _manifest(profile: str) -> dict:
    return report_runs.manifest(profile)


def _typed(summary: dict) -> Summary:
    return validate_summary(summary)


@pytest.fixture(scope="module")
def figure_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every figure the paper expects: one real matplotlib figure (PNG + PDF) under each name."""
    plots.set_style()
    run = RunDir(tmp_path_factory.mktemp("figs"))
    fig, ax = plots.new_figure("single", height=1.2)
    ax.bar(["teacher", "student_distilled"], [0.84, 0.78],
           color=[plots.model_color("teacher"), plots.model_color("student_distilled")])
    plots.percent_axis(ax)
    png, pdf = run.save_figure(fig, "model_accuracy")
    plt.close(fig)
    for spec in report.PAPER_FIGURES:
        shutil.copyfile(png, run.figures / f"{spec.name}.png")
        shutil.copyfile(pdf, run.figures / f"{spec.name}.pdf")
    png.unlink()
    pdf.unlink()
    return run.figures


def make_run(root: Path, figures: Path, profile: str = "default", summary: dict | None = None,
             skip_figures: tuple[str, ...] = (), run_manifest: dict | None = None) -> Path:
    """A run directory as the pipeline leaves it (summary, manifest, figures, notebook HTML)."""
    run = root / profile
    (run / "reports").mkdir(parents=True)
    write_json(run / "summary.json", summary if summary is not None else SUMMARY)
    write_json(run / "manifest.json", run_manifest if run_manifest is not None else _manifest(profile))
    shutil.copytree(figures, run / "figures",
                    ignore=lambda _d, names: [n for n in names if Path(n).stem in skip_figures])
    (run / "tables").mkdir()
    (run / "tables" / "data_card.md").write_text("| split | n |\n|---|---|\n| train | 6823 |\n")
    for nb in NOTEBOOKS:
        for suffix in (".html", ".reader.html"):
            (run / "reports" / f"{nb}{suffix}").write_text(f"<html><body><h1>{nb}</h1></body></html>")
    return run


@pytest.fixture()
def run_dir(tmp_path: Path, figure_files: Path) -> Path:
    return make_run(tmp_path / "outputs", figure_files)


def _figure_paths(md_text: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md_text)


def test_render_writes_paper_tables_and_figures(run_dir: Path) -> None:
    res = report.render(run_dir, engine="python")
    out = run_dir / "paper"
    md = (out / "paper.md").read_text()
    for name in ("headline", "data_card", "teachers", "students", "ablation", "inference", "serving",
                 "published", "published_small"):
        assert (out / "tables" / f"{name}.md").exists(), name
        assert "\\begin{tabular}" in (out / "tables" / f"{name}.tex").read_text(), name
    for heading in ("## Abstract", "## 1. Setup", "## 2. Results", "## 3. Discussion", "## 4. Limitations",
                    "## References"):
        assert heading in md
    assert not res.missing_figures
    named = _figure_paths(md)
    assert len(named) == len(report.PAPER_FIGURES)
    for rel in named:
        assert (out / rel).is_file(), f"the paper names {rel}, which does not exist"
        assert (out / rel).with_suffix(".pdf").is_file()
    # Numbers come from summary.json: the gain, its interval, the p-value and the accuracies.
    assert "+2.40 points (95% CI over seeds [+1.62, +3.18]), p < 0.001 (one-sided) by a paired bootstrap" in md
    assert "78.4%" in md and "76.0%" in md and "84.4%" in md
    assert "Distillation helps: the gain is significant at the 0.05 level." in md
    # The substitutions are stated.
    for phrase in ("all-MiniLM-L6-v2", "pretrained for sentence embeddings", "truncations",
                   "GloVe nearest neighbours", "2-core CPU", "not SST-2", "Pang & Lee"):
        assert phrase in md, phrase
    # Every reference in the list is cited, in order of first use.
    cited = [int(n) for n in re.findall(r"\[(\d+)\]", md)]
    n_refs = len(re.findall(r"^\d+\. ", md.split("## References")[1], flags=re.M))
    assert sorted(set(cited)) == list(range(1, n_refs + 1))


def test_every_table_number_traces_to_summary(run_dir: Path) -> None:
    report.render(run_dir, engine="python")
    students = (run_dir / "paper" / "tables" / "students.md").read_text()
    assert "78.4" in students and "[77.6, 79.1]" in students and "87.7" in students
    published = (run_dir / "paper" / "tables" / "published.md").read_text()
    for r in anchors.DISTILLATION_RESULTS:
        assert r.work in published
    assert "This study (default)" in published and "+2.4" in published


def test_html_is_standalone_without_pandoc(run_dir: Path) -> None:
    report.render(run_dir, engine="python")
    page = (run_dir / "paper" / "paper.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(report.PAPER_FIGURES)
    assert "<table" in page and "python-markdown" in page
    assert report.broken_links(run_dir / "paper" / "paper.html") == []
    assert report.local_links(page) == [], "the standalone paper links no local file"


@pytest.mark.skipif(not report.PANDOC.exists(), reason="pandoc is not installed at /usr/bin/pandoc")
def test_html_with_pandoc(run_dir: Path) -> None:
    report.render(run_dir, engine="pandoc")
    page = (run_dir / "paper" / "paper.html").read_text()
    assert page.count("data:image/png;base64,") == len(report.PAPER_FIGURES)
    assert report.local_links(page) == []
    assert re.search(r'<meta name="kdutils-html-engine" content="pandoc ', page)


def test_render_is_deterministic(run_dir: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    report.render(run_dir, first)
    report.render(run_dir, second)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel


def test_missing_figure_is_left_out_with_a_note(tmp_path: Path, figure_files: Path) -> None:
    run = make_run(tmp_path, figure_files, skip_figures=("ablation", "serving_load"))
    res = report.render(run, engine="python")
    md = res.paper_md.read_text()
    assert set(res.missing_figures) == {"ablation", "serving_load"}
    assert "figures/ablation.png" not in md
    assert "not produced by this run and left out: “ablation” (notebook 04_distillation)" in md
    for rel in _figure_paths(md):
        assert (run / "paper" / rel).is_file()


def test_missing_sections_render_as_not_run(tmp_path: Path, figure_files: Path) -> None:
    summary = {k: v for k, v in copy.deepcopy(SUMMARY).items() if k not in ("inference", "serving", "distillation")}
    del summary["models"]["student_distilled"]
    run = make_run(tmp_path, figure_files, summary=summary)
    res = report.render(run, engine="python")
    md = res.paper_md.read_text()
    assert "Distillation was not run in this profile" in md
    assert "Deployment was not run in this profile" in md
    assert "No ablation was run in this profile" in md
    assert not (run / "paper" / "tables" / "serving.md").exists()
    # An empty summary still renders.
    write_json(run / "summary.json", {})
    md = report.render(run, engine="python").paper_md.read_text()
    assert "The students were not trained in this profile" in md


def _without(path: tuple[str, ...]) -> dict:
    summary = copy.deepcopy(SUMMARY)
    node = summary
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return summary


# What kdutils.study.summary leaves optional: a section before its notebook ran, a model not trained, a
# model not benchmarked, the nginx sweep without nginx.
@pytest.mark.parametrize("path", [
    ("data",), ("models",), ("distillation",), ("inference",), ("serving",),
    *[("models", m) for m in SUMMARY["models"]],
    ("inference", "teacher"), ("serving", "N_replicas_nginx"),
])
def test_any_missing_piece_still_renders(path: tuple[str, ...], tmp_path: Path) -> None:
    for manifest in ({}, _manifest("default")):
        summary = report.guard_intervals(_typed(_without(path)))
        tables = report.build_tables(summary, manifest)
        figures = report.collect_figures(None)
        md = report.render_markdown(report.build_context(summary, manifest, tables, figures, "default"))
        assert md.startswith("# ") and "None" not in md and "## References" in md


# What the contract requires once its section exists: a summary without it was written by an older
# version of the notebooks (or a broken one) and is refused when read, naming the field.
@pytest.mark.parametrize("path", [
    *[("distillation", k) for k in ("gain_ci95", "p_value", "ablation", "mcnemar", "transfer_set")],
    ("serving", "fault_test"), ("serving", "1_replica"), ("serving", "http_overhead"), ("serving", "peers"),
    ("serving", "micro_batching"), ("serving", "settings"), ("inference", "machine"),
])
def test_a_missing_required_field_is_refused_naming_it(path: tuple[str, ...], tmp_path: Path,
                                                        figure_files: Path) -> None:
    run = make_run(tmp_path, figure_files, summary=_without(path))
    field = ".".join(path)
    with pytest.raises(SummaryError, match=rf"{re.escape(field)}: missing .* rerun notebooks/0[45]_"):
        report.render(run, engine="python")
    with pytest.raises(SummaryError, match=re.escape(field)):
        report.write_index(run)


def test_a_summary_from_an_older_version_fails_naming_each_field(tmp_path: Path, figure_files: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    old = copy.deepcopy(SUMMARY)
    # As an earlier data notebook wrote it, and before the bootstrap interval was recorded.
    old["data"]["mean_words"] = old["data"].pop("mean_words_train")
    del old["distillation"]["bootstrap_gain_ci95_points"]
    run = make_run(tmp_path, figure_files, summary=old)
    with pytest.raises(SummaryError) as err:
        report.render(run, engine="python")
    message = str(err.value)
    assert "data.mean_words_train: missing" in message and "data.mean_words: unknown key" in message
    assert "distillation.bootstrap_gain_ci95_points: missing" in message
    assert "rerun notebooks/01_data.ipynb and notebooks/04_distillation.ipynb" in message
    assert not (run / "paper" / "paper.md").exists()
    assert report.main(["render", "--run", str(run), "--engine", "python"]) == 2
    assert "data.mean_words_train: missing" in capsys.readouterr().err


def test_conditional_wording_follows_the_p_value(tmp_path: Path, figure_files: Path) -> None:
    summary = copy.deepcopy(SUMMARY)
    summary["distillation"].update(gain_points_mean=0.31, gain_ci95=[-0.9, 1.5], p_value=0.31)
    run = make_run(tmp_path, figure_files, summary=summary)
    md = report.render(run, engine="python").paper_md.read_text()
    assert "The gain is not significant at the 0.05 level" in md
    assert "is significant" not in md and "Distillation helps" not in md
    assert "includes zero" in md


def test_index_links_resolve_and_list_missing(run_dir: Path) -> None:
    report.render(run_dir, engine="python")
    (run_dir / "reports" / "05_deployment.reader.html").unlink()
    page = report.write_index(run_dir)
    text = page.read_text()
    assert report.broken_links(page) == []
    links = report.local_links(text)
    for nb in NOTEBOOKS:
        assert f"{nb}.html" in links
    assert "../paper/paper.html" in links and "../manifest.json" in links
    assert "05_deployment: no reader&#39;s HTML report" in text
    assert 'id="headline"' in text and "[+1.62, +3.18]" in text


def test_index_of_an_empty_run(tmp_path: Path) -> None:
    run = tmp_path / "empty"
    run.mkdir()
    page = report.write_index(run)
    assert report.broken_links(page) == []
    assert "No notebook has been run" in page.read_text()


def test_publish_then_check_round_trip(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dest = tmp_path / "paper"
    (dest / "mpnet-12").mkdir(parents=True)
    (dest / "mpnet-12" / "keep.txt").write_text("something else in the paper folder")
    report.publish(run_dir, dest)
    for name in ("paper.md", "paper.html", "runs/default/summary.json", "runs/default/manifest.json",
                 "tables/headline.md", "tables/headline.tex", "runs/default/tables/headline.md",
                 "runs/default/tables/notebooks/data_card.md"):
        assert (dest / name).exists(), name
    assert (dest / "figures" / "accuracy_comparison.png").exists()
    assert (dest / "figures" / "accuracy_comparison.pdf").exists()
    assert (dest / "runs" / "default" / "figures" / "accuracy_comparison.pdf").exists()
    assert (dest / "mpnet-12" / "keep.txt").exists(), "publishing replaces only what it writes"
    assert report.broken_links(dest / "paper.html") == []

    # The command `make paper` users run, as a separate process.
    cli = [sys.executable, "-m", "kdutils.report", "check", "--published", str(dest)]
    ok = subprocess.run(cli, capture_output=True, text=True, cwd=REPO_ROOT, timeout=180)
    assert ok.returncode == 0, ok.stdout + ok.stderr

    text = (dest / "tables" / "students.md").read_text()
    (dest / "tables" / "students.md").write_text(text.replace("78.4", "79.9"))
    assert report.main(["check", "--published", str(dest)]) == 1
    assert "tables/students.md" in capsys.readouterr().out

    # A summary edited after publishing no longer matches the committed text.
    (dest / "tables" / "students.md").write_text(text)
    summary = read_json(dest / "runs" / "default" / "summary.json")
    summary["models"]["teacher"]["accuracy"] = 0.9
    write_json(dest / "runs" / "default" / "summary.json", summary)
    diffs, _ = report.check(dest)
    assert any("paper.md" in d for d in diffs)
    assert any("runs/default/tables/teachers.md" in d for d in diffs)


def test_smoke_profile_is_never_published_into_paper(tmp_path: Path, figure_files: Path) -> None:
    run = make_run(tmp_path, figure_files, profile="smoke")
    before = sorted(p.name for p in (REPO_ROOT / "paper").rglob("*")) if (REPO_ROOT / "paper").exists() else []
    with pytest.raises(report.ReportError, match="not published"):
        report.publish(run)
    with pytest.raises(report.ReportError, match="not published"):
        report.render(run, REPO_ROOT / "paper")
    assert report.render(run, engine="python").out_dir == run / "paper"
    after = sorted(p.name for p in (REPO_ROOT / "paper").rglob("*")) if (REPO_ROOT / "paper").exists() else []
    assert before == after
    assert report.publish_dir("paper") == REPO_ROOT / "paper" / "runs" / "paper"


@pytest.fixture()
def paper_run(tmp_path: Path, figure_files: Path) -> Path:
    """The ``paper`` profile's run: the 12-layer mpnet-12 teacher, its 2/4/6/8-layer truncations."""
    return make_run(tmp_path / "outputs", figure_files, profile="paper", summary=report_runs.mpnet_summary(),
                    run_manifest=report_runs.manifest("paper", "mpnet-12", (2, 4, 6, 8)))


def test_paper_with_only_the_default_run_is_that_runs_paper(run_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "paper"
    report.publish(run_dir, dest, engine="python")
    alone = report.render(run_dir, tmp_path / "alone", engine="python")
    assert (dest / "paper.md").read_text() == alone.paper_md.read_text()
    assert sorted(p.name for p in (dest / "tables").iterdir()) == sorted(p.name for p in (tmp_path / "alone" / "tables").iterdir())
    md = (dest / "paper.md").read_text()
    assert "teacher_comparison" not in md and "second teacher" not in md and "### 2.7" not in md
    assert not (dest / "figures" / "teacher_comparison.png").exists()


def test_both_runs_published_side_by_side(run_dir: Path, paper_run: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    dest = tmp_path / "paper"
    report.publish(run_dir, dest, engine="python")
    default_files = {p.relative_to(dest): p.read_bytes() for p in (dest / "runs" / "default").rglob("*") if p.is_file()}
    assert report.main(["publish", "--run", str(paper_run), "--dest", str(dest), "--engine", "python"]) == 0
    assert "published" in capsys.readouterr().out
    # The paper run is copied beside the default one, which is left as it was.
    for name in ("summary.json", "manifest.json", "tables/teachers.md", "tables/teachers.tex",
                 "tables/notebooks/data_card.md", "figures/teacher_depth.png", "figures/teacher_depth.pdf"):
        assert (dest / "runs" / "paper" / name).exists(), name
    assert {p.relative_to(dest): p.read_bytes() for p in (dest / "runs" / "default").rglob("*") if p.is_file()} \
        == default_files
    # One paper from both: default is the main body, the 110M teacher adds a section.
    md = (dest / "paper.md").read_text()
    assert md.startswith("# Distilling all-MiniLM-L6-v2 into a BiLSTM")
    assert "### 2.6 A second teacher: all-mpnet-base-v2" in md and "### 2.7 Comparison with published work" in md
    assert "The `paper` profile repeats the study with all-mpnet-base-v2 as the teacher" in md
    assert "with its truncations to the first 2, 4, 6, 8 layers; the data, the seeds, the students and the " \
           "distillation recipe are those of the main study." in md
    assert "runs/<profile>/" in md and "None" not in md
    for name in ("teacher_comparison", "depth_paper"):
        assert (dest / "tables" / f"{name}.md").exists() and (dest / "tables" / f"{name}.tex").exists(), name
    for ext in ("png", "pdf"):
        assert (dest / "figures" / f"teacher_comparison.{ext}").stat().st_size > 1000
    assert "](figures/teacher_comparison.png)" in md
    assert report.broken_links(dest / "paper.html") == []

    # Table, text and figure take their numbers from one function.
    rows = [report_results.teacher_comparison(report.guard_intervals(_typed(s)), m, p) for s, m, p in (
        (SUMMARY, _manifest("default"), "default"),
        (report_runs.mpnet_summary(), report_runs.manifest("paper", "mpnet-12", (2, 4, 6, 8)), "paper"))]
    assert [round(100 * c.gap_closed) for c in rows] == [28, 23]
    assert [round(c.latency_ratio) for c in rows] == [15, 63] and [round(c.size_ratio) for c in rows] == [18, 87]
    table = report.build_tables(report.guard_intervals(_typed(SUMMARY)), _manifest("default"),
                                {"teacher_comparison": report_tables.comparison_table(rows)})["teacher_comparison"]
    assert table.frame.to_dict("list") == {
        "Teacher": ["all-MiniLM-L6-v2 (6 layers, 22.7M)", "all-mpnet-base-v2 (12 layers, 109.5M)"],
        "Profile": ["default", "paper"], "Teacher (%)": ["84.4", "88.6"], "Baseline (%)": ["76.0", "76.0"],
        "Distilled (%)": ["78.4", "78.9"], "Gain (points)": ["+2.40 [+1.62, +3.18]", "+2.90 [+2.11, +3.69]"],
        "p": ["< 0.001", "< 0.001"], "Gap closed (%)": ["28", "23"], "Latency ratio": ["15x", "63x"],
        "Size ratio": ["18x", "87x"]}
    assert (dest / "tables" / "teacher_comparison.md").read_text() == table.markdown()
    assert "which closes 28% of the gap between baseline and teacher" in md
    assert "which closes 23% of the gap between baseline and teacher" in md
    assert "The teacher answers one sentence 63x slower than the distilled student, and its weights take 87x" in md
    assert "closes 23% of the gap between baseline and teacher, against 28% with all-MiniLM-L6-v2" in md

    # The depth table: every depth of the 110M teacher, deepest first, beside the students.
    depth = (dest / "tables" / "depth_paper.md").read_text().splitlines()
    assert [line.split("|")[1].strip() for line in depth[2:]] == [
        "all-mpnet-base-v2 (full)", *(f"all-mpnet-base-v2, first {k} layers" for k in (8, 6, 4, 2)),
        "BiLSTM distilled", "BiLSTM baseline"]
    assert "| 38.4 " in depth[2] and "| 52.0 " in depth[2] and "| 7.40 " in depth[6] and "| 14.9 " in depth[6]

    # check verifies both runs, in process and as the CLI users run.
    assert report.check(dest)[0] == []
    cli = [sys.executable, "-m", "kdutils.report", "check", "--published", str(dest)]
    ok = subprocess.run(cli, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    summary = read_json(dest / "runs" / "paper" / "summary.json")
    summary["models"]["teacher"]["accuracy"] = 0.9
    write_json(dest / "runs" / "paper" / "summary.json", summary)
    diffs, _ = report.check(dest)
    assert any("paper.md" in d for d in diffs) and any("tables/teacher_comparison.md" in d for d in diffs)
    assert any("runs/paper/tables/teachers.md" in d for d in diffs)
    del summary["distillation"]["p_value"]
    write_json(dest / "runs" / "paper" / "summary.json", summary)
    with pytest.raises(SummaryError, match=r"runs/paper/summary.json: distillation.p_value: missing"):
        report.check(dest)


def test_a_comparison_says_when_more_than_the_teacher_differs(run_dir: Path, paper_run: Path,
                                                               tmp_path: Path) -> None:
    other = read_json(paper_run / "manifest.json")
    other["parameters"]["distill"]["n_iter"] = 3
    write_json(paper_run / "manifest.json", other)
    runs = {"default": report_reading.load_run(run_dir), "paper": report_reading.load_run(paper_run)}
    md = report_render.render_paper(runs, tmp_path / "out", engine="python").paper_md.read_text()
    assert "its distill parameters differ from the main study's, so the comparison is not one of the teacher " \
           "alone" in md


def _with_targets(summary: dict, gain: float, gap: float | None = None, teacher: float | None = None,
                  latency_ratio: float | None = None) -> dict:
    """``summary`` with the targets notebooks 04 and 05 would record for it (the library computes them)."""
    typed = _typed(summary)
    rows = distilled.evaluate_targets(typed.models.student_distilled, typed.distillation, typed.models, gain, gap,
                                    teacher)
    deployment = bench.evaluate_targets(summary["inference"], summary["serving"], latency_ratio_target=latency_ratio)
    return {**summary, "targets": {"distillation": rows, "deployment": deployment}}


def test_paper_says_which_targets_each_run_met_and_missed(tmp_path: Path, figure_files: Path) -> None:
    default = make_run(tmp_path / "outputs", figure_files, summary=_with_targets(SUMMARY, 3.0))
    paper = make_run(tmp_path / "outputs", figure_files, profile="paper",
                     summary=_with_targets(report_runs.mpnet_summary(), 4.0, 0.55, 0.88, 50),
                     run_manifest=report_runs.manifest("paper", "mpnet-12", (2, 4, 6, 8)))
    dest = tmp_path / "paper"
    report.publish(default, dest, engine="python")
    report.publish(paper, dest, engine="python")
    md = (dest / "paper.md").read_text()
    assert "### 2.7 Targets met and missed" in md and "### 2.8 Comparison with published work" in md
    for profile in ("default", "paper"):
        targets = read_json(dest / "runs" / profile / "summary.json")["targets"]
        rows = targets["distillation"] + targets["deployment"]
        met, missed = sum(r["met"] is True for r in rows), [r for r in rows if r["met"] is False]
        assert f"Profile `{profile}` meets {met} of its {len(rows)} targets" in md
        for r in missed:
            assert f"{r['target']} (measured: {r['measured']})" in md
        table = (dest / "tables" / f"targets_{profile}.md").read_text()
        assert table.count("| no ") == len(missed) and all(r["target"] in table for r in rows)
    # The paper run's own bars: gain 4.0 missed at +2.90, 55% of the gap missed at 23%, teacher 88% met.
    paper_rows = read_json(dest / "runs" / "paper" / "summary.json")["targets"]["distillation"]
    assert [(r["target"], r["met"]) for r in paper_rows if "accuracy" in r["target"] or "gain of" in r["target"]
            or "gap" in r["target"]] == [("teacher test accuracy at least 88%", True),
                                         ("gain of at least 4 points", False),
                                         ("at least 55% of the teacher-baseline gap closed", False)]
    eager = "student_distilled batch-1 latency >= 50x lower than teacher (eager)"
    assert f"| {eager} " in (dest / "tables" / "targets_paper.md").read_text()
    assert [(r["met"], r["measured"]) for r in read_json(dest / "runs" / "paper" / "summary.json")["targets"]
            ["deployment"] if r["target"] == eager] == [(True, "63x")]
    assert f"{eager} (measured: " not in md
    assert report.check(dest)[0] == []


def test_targets_of_a_run_that_cannot_be_compared_are_still_stated(tmp_path: Path, figure_files: Path) -> None:
    # The paper run's distillation section is gone, so no teacher comparison can be built; its
    # targets (written by its notebooks) are still the paper's to state.
    other = _with_targets(report_runs.mpnet_summary(), 4.0, 0.55, 0.88, 50)
    del other["distillation"]
    default = make_run(tmp_path / "outputs", figure_files, summary=_with_targets(SUMMARY, 3.0))
    paper = make_run(tmp_path / "outputs", figure_files, profile="paper", summary=other,
                     run_manifest=report_runs.manifest("paper", "mpnet-12", (2, 4, 6, 8)))
    runs = {"default": report_reading.load_run(default), "paper": report_reading.load_run(paper)}
    out = report_render.render_paper(runs, tmp_path / "out", engine="python")
    md = out.paper_md.read_text()
    assert "second teacher" not in md and "### 2.6 Targets met and missed" in md
    assert "Profile `default` meets" in md and "Profile `paper` meets" in md
    assert (tmp_path / "out" / "tables" / "targets_paper.md").exists()


def _publish_error(run: Path, dest: Path) -> str:
    with pytest.raises(report.ReportError) as err:
        report.publish(run, dest, engine="python")
    assert not dest.exists() or not any(dest.iterdir()), "a refused run writes nothing"
    return str(err.value)


def test_publish_refuses_a_dirty_or_unfinished_run(tmp_path: Path, figure_files: Path) -> None:
    dest = tmp_path / "paper"
    dirty = report_runs.manifest("default", dirty=True)
    assert "uncommitted changes (git.dirty is true)" in _publish_error(
        make_run(tmp_path / "a", figure_files, run_manifest=dirty), dest)
    one_dirty = report_runs.manifest("default")
    one_dirty["notebooks"]["03_student"]["git"].update(dirty=True, modified=["kdutils/student/train.py"])
    assert "notebook 03_student ran with uncommitted changes (kdutils/student/train.py)" in _publish_error(
        make_run(tmp_path / "b", figure_files, run_manifest=one_dirty), dest)
    failed = report_runs.manifest("default")
    failed["notebooks"]["05_deployment"]["status"] = "failed"
    del failed["notebooks"]["04_distillation"]
    message = _publish_error(make_run(tmp_path / "c", figure_files, run_manifest=failed), dest)
    assert "notebook 04_distillation has not run" in message and "notebook 05_deployment failed" in message
    # No flag bypasses it; the CLI says why and fails.
    run = make_run(tmp_path / "d", figure_files, run_manifest=dirty)
    assert report.main(["publish", "--run", str(run), "--dest", str(dest), "--engine", "python"]) == 2


def test_check_names_a_paper_folder_in_the_old_layout(tmp_path: Path) -> None:
    old = tmp_path / "paper"
    old.mkdir()
    write_json(old / "summary.json", SUMMARY)
    with pytest.raises(report.ReportError, match="layout before runs/<profile>/"):
        report.check(old)


def test_cli_render_and_index(run_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert report.main(["render", "--run", str(run_dir), "--engine", "python"]) == 0
    assert report.main(["index", "--run", str(run_dir)]) == 0
    assert (run_dir / "paper" / "paper.html").exists() and (run_dir / "reports" / "index.html").exists()
    assert report.main(["render", "--run", str(run_dir.parent / "nope")]) == 2
    assert "summary.json" in capsys.readouterr().err


def test_figures_are_numbered_in_the_order_the_paper_places_them() -> None:
    placed = [name for section in report.PAPER_SECTIONS for name in report.FIGURE_SECTIONS[section]]
    assert placed == [f.name for f in report.PAPER_FIGURES]
    assert len(set(placed)) == len(placed)


def test_formatting() -> None:
    assert report.pct(0.83456) == "83.5%" and report.pct(None) == "n/a"
    assert report.pct_ci([0.8, 0.85]) == "[80.0, 85.0]"
    assert report.points(2.31) == "+2.3" and report.points(-0.5) == "-0.5"
    assert report.pval(0.0004) == "< 0.001" and report.pval(0.0123) == "0.012" and report.pval(0.31) == "0.31"
    assert report.millions(22713602) == "22.7M" and report.millions(1261802) == "1.26M"
    assert report.millions(843522) == "844k"
    assert report.num(2043.7) == "2,040" and report.num(1433.2) == "1,430" and report.num(40.917) == "40.9"
    assert report.num(523.4) == "523" and report.num(99999.9) == "100,000" and report.num(999.6) == "1,000" and report.num(float("nan")) == "—"
    assert report.format_cell("accuracy_ci95", [0.1, 0.2]) == "[10.0, 20.0]"
    assert report.format_cell("p_value", 0.2) == "0.20"
    assert report.format_cell("model", "student_distilled") == "BiLSTM distilled"
    assert plots.model_label("teacher_L4") == "Teacher, 4 layers"
    from kdutils.report.formatting import counted
    assert counted(1, "epoch") == "1 epoch" and counted(2, "thread") == "2 threads" and counted(1500, "run") == "1,500 runs"


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium is not installed at /usr/bin/chromium")
def test_index_in_headless_chromium(run_dir: Path, tmp_path: Path) -> None:
    report.render(run_dir, engine="python")
    page = report.write_index(run_dir)
    shots = default_output_root() / "_test_report" / "reports"
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / "index.png"
    shot.unlink(missing_ok=True)
    base = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'chrome'}"]
    url = page.resolve().as_uri()
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1280,2000", url], capture_output=True,
                   timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000, "Chromium wrote no screenshot"
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert '<table id="headline">' in dom and "BiLSTM distilled" in dom
    assert re.search(r"<img [^>]*src=\"\.\./figures/accuracy_comparison\.png\"", dom)
    # The paper's images load from data URIs in the same browser.
    dom = subprocess.run([*base, "--dump-dom", (run_dir / "paper" / "paper.html").resolve().as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert dom.count("data:image/png;base64,") == len(report.PAPER_FIGURES)


def test_committed_paper_is_what_its_summary_gives() -> None:
    """``paper/`` on main publishes the default and the paper run: re-rendering it from their
    summaries changes nothing, and both runs validate."""
    published = REPO_ROOT / "paper"
    runs = published / "runs"
    profiles = {p.name for p in runs.iterdir() if p.is_dir()} if runs.is_dir() else set()
    assert profiles == {"default", "paper"}, (
        "paper/ must publish both runs: make paper PROFILE=default and make paper PROFILE=paper")
    for profile in profiles:
        assert read_json(runs / profile / "manifest.json")["profile"] == profile
    diffs, notes = report.check(published)
    assert diffs == [], "paper/ differs from a re-render of paper/runs/*/summary.json:\n" + "\n".join(diffs)
    assert report.broken_links(published / "paper.html") == []
    named = set(re.findall(r"figures/([\w-]+)\.png", (published / "paper.md").read_text()))
    assert "teacher_comparison" in named, "the paper shows both teachers side by side"
    for name in named:
        assert (published / "figures" / f"{name}.png").exists() and (published / "figures" / f"{name}.pdf").exists(), name


def _two_seed_summary() -> dict:
    """A run recorded before intervals were guarded: 2 seeds, t-intervals far outside what is possible."""
    summary = copy.deepcopy(SUMMARY)
    for name in ("student_original", "student_baseline", "student_distilled"):
        m = summary["models"][name]
        m.update(per_seed=m["per_seed"][:2], n_seeds=2, accuracy_ci95=[-0.804, 1.737], macro_f1_ci95=[-0.5, 1.4])
    summary["models"]["student_distilled"]["teacher_agreement_per_seed"][2:] = []
    summary["distillation"].update(gain_points_per_seed=[2.0, 2.8], seeds=[0, 1], gain_ci95=[-129.91, 166.57],
                                   p_value=0.004)
    return summary


def _intervals(text: str) -> list[tuple[float, float]]:
    return [(float(a), float(b)) for a, b in re.findall(r"\[([+-]?\d+\.\d+), ([+-]?\d+\.\d+)\]", text)]


def test_no_interval_from_too_few_seeds_and_every_verdict_carries_the_caveat(tmp_path: Path,
                                                                              figure_files: Path) -> None:
    run = make_run(tmp_path, figure_files, summary=_two_seed_summary())
    md = report.render(run, engine="python").paper_md.read_text()
    index = report.write_index(run).read_text()
    tables = "".join(p.read_text() for p in (run / "paper" / "tables").glob("*.md"))
    for text in (md, index, tables):
        assert "-80.4" not in text and "173.7" not in text and "129.91" not in text and "166.57" not in text
        assert all(-100 <= lo <= hi <= 100 for lo, hi in _intervals(text))
    caveat = "although with 2 seeds there is no interval over seeds (none below 3)"
    # Abstract, results and discussion of the paper, and the index banner, say it alike.
    assert md.count(caveat) == 3, md
    assert "Distillation helps: the gain is significant at the 0.05 level, " + caveat in md
    assert "not yet across seeds" in md and "survives seed variation" not in md
    assert caveat in html.unescape(index) and "significant at the 0.05 level" in index
    # Sentences leave a missing interval out and say why, rather than print "(95% CI —)".
    assert "CI —" not in md and "(—)" not in md
    assert "for the same network trained on labels alone (no interval over 2 seeds: none is given below 3)" in md
    assert "2 seeds per student are too few for an interval over seeds" in md
    students = (run / "paper" / "tables" / "students.md").read_text()
    assert "none below 3 seeds" in students or "none below 3 seeds" in md


def test_significant_gain_whose_seed_interval_includes_zero_is_qualified_everywhere(
        tmp_path: Path, figure_files: Path) -> None:
    summary = copy.deepcopy(SUMMARY)
    summary["distillation"].update(gain_points_mean=0.8, gain_ci95=[-0.4, 2.0], p_value=0.01)
    run = make_run(tmp_path, figure_files, summary=summary)
    md = report.render(run, engine="python").paper_md.read_text()
    index = html.unescape(report.write_index(run).read_text())
    caveat = "although with 5 seeds the 95% interval over seeds, [-0.40, +2.00], still includes zero"
    assert md.count(caveat) == 3 and caveat in index


def test_ablation_rows_with_too_few_seeds_show_no_interval(tmp_path: Path, figure_files: Path) -> None:
    summary = copy.deepcopy(SUMMARY)
    for row in summary["distillation"]["ablation"]:
        row["seeds"] = 2
    table = report.ablation_table(report.guard_intervals(_typed(summary)))
    assert "95% CI (%)" not in table.frame.columns
    assert "mean over the row's 2 seeds, too few for an interval" in table.caption
    mixed = report.ablation_table(report.guard_intervals(_typed(SUMMARY)))
    assert mixed.frame["95% CI (%)"].tolist() == ["[77.6, 79.1]", "—", "—"]


def test_teacher_table_takes_its_latency_from_the_deployment_benchmark() -> None:
    summary = copy.deepcopy(SUMMARY)
    summary["inference"]["teacher_L2"] = {"torch": {**summary["inference"]["teacher"]["torch"], "latency_ms_p50": 4.25}}
    table = report.teacher_table(_typed(summary), _manifest("default"))
    latency = table.frame.set_index("Model")["Batch-1 p50 latency (ms)"]
    # 9.12 is notebook 05's interleaved p50; notebook 02's own 9.3 ms is not used beside it.
    assert latency["all-MiniLM-L6-v2 (full)"] == "9.12" and latency["all-MiniLM-L6-v2, first 2 layers"] == "4.25"
    assert latency["all-MiniLM-L6-v2, first 4 layers"] == "—"
    assert "deployment benchmark" in table.caption
    # Without notebook 05, the teacher notebook's timing is shown and named as such.
    del summary["inference"]
    table = report.teacher_table(_typed(summary), _manifest("default"))
    assert table.frame["Batch-1 latency (ms, notebook 02)"].tolist()[-1] == "9.30"
    assert "with 2 torch thread(s)" in table.caption and "did not run" in table.caption


def test_interval_and_missing_value_formatting() -> None:
    assert report.pct_ci([-0.804, 1.737]) == "[0.0, 100.0]"
    assert report.pct_ci(None) == "—" and report.points_ci(None) == "—"
    assert report.points_ci([-129.91, 166.57], 2) == "[-100.00, +100.00]"
    frame = pd.DataFrame({"model": ["student_baseline", "tfidf_logreg"], "accuracy_mean": [0.79123, float("nan")],
                          "accuracy_ci95": [None, [0.78, 0.8212]], "ci_high": [1.082514, 0.9],
                          "McNemar p": [0.0287, 0.31], "gain (points)": [2.9308, None],
                          "train_seconds_mean": [35.2, 400.0], "from cache": [True, False]})
    shown = report.readable(frame)
    assert shown.to_dict("records") == [
        {"Model": "BiLSTM baseline", "Accuracy (%)": "79.1", "95% CI (%)": "—", "Ci high": "1.08",
         "McNemar p": "0.029", "Gain (points)": "+2.93", "Train time (mean)": "35 s", "From cache": "yes"},
        {"Model": "TF-IDF + log. reg.", "Accuracy (%)": "—", "95% CI (%)": "[78.0, 82.1]", "Ci high": "0.9",
         "McNemar p": "0.31", "Gain (points)": "—", "Train time (mean)": "6.7 min", "From cache": "no"}]
    assert "NaN" not in shown.to_string() and "nan" not in shown.to_string()


def test_index_shows_tables_inline_and_figures_readably(run_dir: Path) -> None:
    report.render(run_dir, engine="python")
    # A wide figure (three panels side by side) and a square one.
    for name, size in (("serving_load", (9, 2.5)), ("ablation", (3, 3))):
        fig, _ = plt.subplots(1, 1, figsize=size)
        RunDir(run_dir).save_figure(fig, name)
        plt.close(fig)
    page = report.write_index(run_dir)
    text = page.read_text()
    assert report.broken_links(page) == []
    tables = report.build_tables(report.guard_intervals(_typed(SUMMARY)), _manifest("default"))
    for name in ("data_card", "headline", "teachers", "students", "ablation", "inference", "serving"):
        # Rendered on the page, with its caption: no table is only a link to a raw Markdown file.
        assert f'id="table-{name}"' in text and tables[name].caption in html.unescape(text), name
    assert 'id="table-notebooks-data_card"' in text  # the notebooks' own tables too
    block = text.split('id="table-students"')[1].split("</details>")[0]
    assert "<table>" in block and "BiLSTM distilled" in block
    # Every figure links to its full-size file, carries its caption as alt text; wide ones span the row.
    for spec in report.PAPER_FIGURES:
        assert re.search(rf'<a href="\.\./figures/{spec.name}\.png"[^>]*><img src="\.\./figures/{spec.name}\.png" '
                         rf'alt="{re.escape(html.escape(spec.caption).replace("&#x27;", "&#39;"))}"', text), spec.name
    assert '<figure class="wide" id="figure-serving_load">' in text
    assert '<figure id="figure-ablation">' in text
