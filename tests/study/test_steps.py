"""The table of pipeline steps: true to what the notebooks read, and what the checks derive from it."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import pytest
from pydantic import BaseModel

from kdutils import pipeline
from kdutils.data.corpora import SPLIT_NAMES
from kdutils.study import steps
from kdutils.study.config import Profile
from kdutils.study.files import REPO_ROOT
from kdutils.study.model_files import META_FILE, ONNX_FILES, VOCAB_FILE, WEIGHTS_FILE
from kdutils.study.runs import RunDir, missing, to_run
from kdutils.study.summary import Summary, SummaryError

SECTIONS = {name for name, f in Profile.model_fields.items()
            if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)}
# cfg.name names the run directory itself: a profile of another name is another run.
NOT_KEYED = {"name"}


def _chain(node: ast.AST) -> tuple[str, list[str]] | None:
    """``cfg.teacher.max_length`` -> ("cfg", ["teacher", "max_length"]); None if not rooted in a name."""
    attrs = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    return (node.id, attrs[::-1]) if isinstance(node, ast.Name) else None


def _key(path: list[str]) -> str:
    # A profile value is a section's key (student.main, not deeper) or a top-level field (seeds).
    return ".".join(path[:2] if path[0] in SECTIONS else path[:1])


def notebook_reads(path: Path) -> set[str]:
    """The profile values a notebook's code reads: ``cfg.<section>.<key>`` chains, through aliases
    such as ``dc = cfg.distill``; a section (or alias) used whole, e.g. passed to a function, reads
    the whole section."""
    source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    tree = ast.parse(source)
    aliases: dict[str, list[str]] = {"cfg": []}
    alias_values: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
            pairs = (zip(target.elts, value.elts, strict=True)
                     if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) else [(target, value)])
            for t, v in pairs:
                chain = _chain(v)
                if isinstance(t, ast.Name) and chain and chain[0] == "cfg" and chain[1]:
                    aliases[t.id] = chain[1]
                    alias_values.add(id(v))
    parents = {id(child): parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    reads = set()
    for node in ast.walk(tree):
        if id(node) in alias_values or isinstance(parents.get(id(node)), ast.Attribute):
            continue  # an alias being made, or the inside of a longer chain
        chain = _chain(node)
        if chain is None or chain[0] not in aliases or isinstance(getattr(node, "ctx", None), ast.Store):
            continue
        path = aliases[chain[0]] + chain[1]
        assert path, f"{path}: the whole profile is passed on; the table cannot say what is read"
        reads.add(_key(path))
    return reads - NOT_KEYED


def _expanded(reads: set[str] | tuple[str, ...]) -> set[str]:
    """Whole sections as all their keys, so "student" and every student.<key> compare equal."""
    out = set()
    for read in reads:
        if read in SECTIONS:
            out |= {f"{read}.{k}" for k in Profile.model_fields[read].annotation.model_fields}
        else:
            out.add(read)
    return out


@pytest.mark.parametrize("spec", steps.STEPS, ids=lambda s: s.name)
def test_the_table_says_what_each_notebook_reads(spec: steps.StepSpec) -> None:
    read = notebook_reads(REPO_ROOT / spec.notebook)
    assert _expanded(spec.reads) == _expanded(read), (
        f"{spec.name} reads {sorted(read)}; kdutils.study.steps says {sorted(spec.reads)}")


def test_the_reads_parser_sees_aliases_whole_sections_and_keys(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "cfg = load_profile(profile)\ndc, sc = cfg.deploy, cfg.student\nseeds = list(cfg.seeds)\n"
        "f(cfg.data)\nx = sc.main.model_dump()\ny = cfg.teacher.max_length + dc.replicas\nprint(cfg.name)")]
    nbformat.write(nb, tmp_path / "n.ipynb")
    assert notebook_reads(tmp_path / "n.ipynb") == {"seeds", "data", "student.main", "teacher.max_length",
                                                    "deploy.replicas"}


def test_every_need_is_written_by_an_earlier_step() -> None:
    for i, spec in enumerate(steps.STEPS):
        for need in (*spec.needs, *spec.needs_summary):
            source = steps.writer(need)
            assert source is not None and steps.STEPS.index(source) < i, f"{spec.name} needs {need}"


def test_the_summary_entries_are_the_contracts_sections() -> None:
    written = [k for s in steps.STEPS for k in s.summary]
    assert len(written) == len(set(written))
    assert {k.split(".")[0] for k in written} == set(Summary.model_fields)
    assert steps.writer("models.teacher_L12").name == "02_teacher"
    assert steps.writer("models.student_distilled").name == "04_distillation"
    assert steps.writer("models.bert") is None and steps.writer("models/teacher_L2/kdmodel.json").name == "02_teacher"


def test_the_table_lays_files_out_as_the_run_directory_does(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    written = {w for s in steps.STEPS for w in s.writes}
    for name, seed in (("teacher", None), ("teacher_L{depth}", None), ("student_baseline", 3)):
        model = run.model_dir(name, seed).relative_to(run.root).as_posix().replace("seed3", "seed{seed}")
        assert f"{model}/kdmodel.json" in written
    assert {f"data/{n}.parquet" for n in SPLIT_NAMES} <= written
    assert steps.model_file("teacher_L4") == "models/teacher_L4/kdmodel.json"
    assert steps.model_file("student_original") == "models/student_original/seed*/kdmodel.json"
    with pytest.raises(KeyError, match="bert"):
        steps.model_file("bert")


def test_the_tables_model_and_metrics_files_are_the_run_directorys(tmp_path: Path) -> None:
    # steps builds its templates from kdutils.study.runs and kdutils.study.model_files: the same files, never a copy.
    run = RunDir(tmp_path / "run")
    written = {w for s in steps.STEPS for w in s.writes}
    seed = 3

    def rel(path: Path) -> str:
        return path.relative_to(run.root).as_posix().replace(f"seed{seed}", "seed{seed}")

    for name in steps.students():
        model = run.model_dir(name, seed)
        assert {rel(model / f) for f in (META_FILE, WEIGHTS_FILE, VOCAB_FILE)} <= written
        assert {rel(run.predictions_path(name, split, seed)) for split in ("val", "test")} <= written
        assert rel(run.history_path(name, seed)) in written
    assert rel(run.predictions_path("teacher", "test")) in written
    assert {rel(run.onnx_dir("{model}") / f) for f in ONNX_FILES.values()} <= written
    assert rel(run.data_meta_path) in steps.step("01").writes
    assert steps.students() == ["student_baseline", "student_original", "student_distilled"]


def test_missing_reads_the_summary_validated(tmp_path: Path) -> None:
    root = tmp_path / "smoke"
    (root / "summary.json").parent.mkdir(parents=True)
    (root / "summary.json").write_text(json.dumps({"models": {"teacher": {"accuracy": 2.5}}}))
    with pytest.raises(SummaryError, match=r"models\.teacher"):
        missing(root, "04")
    (root / "summary.json").write_text(json.dumps({"data": None}))
    assert [str(p) for p in missing(root, "04") if "summary.json" in str(p)] == [
        "summary.json has no models.teacher (run notebooks/02_teacher.ipynb)",
        "summary.json has no models.student_baseline (run notebooks/03_student.ipynb)"]


def test_a_truncation_keeps_at_least_one_layer() -> None:
    assert steps.writer("models.teacher_L0") is None and steps.writer("models/teacher_L0/kdmodel.json") is None
    with pytest.raises(KeyError, match="teacher_L0"):
        steps.model_file("teacher_L0")
    assert steps.model_file("teacher_L1") == "models/teacher_L1/kdmodel.json"


def test_messages_name_the_notebook_to_run() -> None:
    assert steps.run_first("data/meta.json") == "run notebooks/01_data.ipynb for this profile first"
    assert steps.run_first("data/test.parquet", rerun=True) == "rerun notebooks/01_data.ipynb"
    assert steps.run_first("models.student_baseline") == "run notebooks/03_student.ipynb for this profile first"
    assert steps.span(steps.trainers()) == "02-04"
    assert steps.step("04").name == steps.step("04_distillation").name == "04_distillation"
    with pytest.raises(steps.UnknownStep, match="07"):
        steps.step("07")


# ----------------------------------------------------------------------------- upstream checks


def test_missing_upstream_names_each_artefact_and_writes_nothing(tmp_path) -> None:
    root = tmp_path / "run" / "smoke"
    problems = [str(p) for p in missing(root, "04", [0, 1])]
    assert any("data/meta.json" in p and "01_data" in p for p in problems)
    assert any("teacher/model.safetensors" in p and "02_teacher" in p for p in problems)
    assert any("student_baseline_seed1_test.npz" in p and "03_student" in p for p in problems)
    assert not root.exists()


def test_missing_upstream_comes_down_to_one_command(tmp_path) -> None:
    # issue 13.13's instance: without its upstream, notebook 04 listed 24 files instead of what to run.
    root = tmp_path / "run" / "smoke"
    seeds = [0, 1, 2, 3, 4]
    assert len(missing(root, "04", seeds)) > 20
    assert to_run(missing(root, "04", seeds)) == ["01_data", "02_teacher", "03_student"]
    # Only the students are missing: only notebook 03 needs to run.
    (root / "data").mkdir(parents=True)
    (root / "data" / "meta.json").write_text("{}")
    (root / "models" / "teacher").mkdir(parents=True)
    for f in ("kdmodel.json", "model.safetensors"):
        (root / "models" / "teacher" / f).write_text("{}")
    # A validated summary: notebook 02's entry as the smoke run wrote it.
    teacher = json.loads((REPO_ROOT / "tests" / "fixtures" / "smoke_summary.json").read_text())["models"]["teacher"]
    (root / "summary.json").write_text(json.dumps({"models": {"teacher": teacher}}))
    assert to_run(missing(root, "04", seeds)) == ["03_student"]
    with pytest.raises(FileNotFoundError) as err:
        pipeline.require_upstream("04", root, "smoke", seeds=seeds)
    assert str(err.value).startswith(f"notebook 04 needs what 03_student writes for profile 'smoke' under {root} (")
    assert str(err.value).endswith("run first:  python -m kdutils.pipeline run --profile smoke --only 03 --force")


def test_notebook_05_needs_one_seed_of_each_student_it_serves(tmp_path) -> None:
    root = tmp_path / "smoke"
    for rel in ("data/meta.json", "models/teacher/kdmodel.json", "models/student_distilled/seed1/kdmodel.json"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("{}")
    pipeline.require_upstream("05", root, "smoke", extra=[steps.model_file("student_distilled")])
    with pytest.raises(FileNotFoundError, match=r"teacher_L2/kdmodel.json \(run notebooks/02_teacher.ipynb\).*"
                                                r"--only 02 03 --force"):
        pipeline.require_upstream("05", root, "smoke", extra=[steps.model_file(m)
                                                             for m in ("teacher_L2", "student_baseline")])
