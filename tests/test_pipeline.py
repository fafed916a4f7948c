"""The papermill pipeline: order, caching, --force, --only, failure messages, manifest."""

import json
from pathlib import Path

import pandas as pd
import pytest
from step_notebooks import write_step_notebook

from kdutils import pipeline
from kdutils.manifest import git_state
from kdutils.study import steps
from kdutils.study.config import load_profile
from kdutils.study.files import read_json
from kdutils.study.specs import ConfigError
from kdutils.study.steps import discover_steps


def _notebook(path: Path, body: str) -> None:
    write_step_notebook(path, body, heading="# test")


# The test notebooks record what they saw in probe.json: summary.json only takes the sections of
# kdutils.study.summary (RunDir.update_summary validates every write).
RECORD = (
    "import json\nfrom kdutils.study.runs import write_json\np = run.root / 'probe.json'\n"
    "probe = json.loads(p.read_text()) if p.exists() else {}\n"
    "probe['{name}'] = {value}\nwrite_json(p, probe)"
)
WRITE_SUMMARY = (
    "from kdutils.study.config import load_profile\nfrom kdutils.study.runs import RunDir\n"
    "cfg = load_profile(profile, overrides)\nrun = RunDir.for_profile(cfg.name, output_root)\n"
    + RECORD.replace("{value}", "{'seeds': list(cfg.seeds)}")
    + "\nprint('hello from {name}')"
)


@pytest.fixture()
def notebooks(tmp_path: Path) -> Path:
    d = tmp_path / "nbs"
    d.mkdir()
    _notebook(d / "01_first.ipynb", WRITE_SUMMARY.replace("{name}", "first"))
    _notebook(d / "02_second.ipynb", WRITE_SUMMARY.replace("{name}", "second"))
    return d


def test_runs_in_order_then_skips_unchanged_then_force(notebooks: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = pipeline.run_pipeline("smoke", output_root=out, notebook_dir=notebooks, report=False)
    assert run.root == out / "smoke"
    summary = read_json(run.root / "probe.json")
    assert summary["first"]["seeds"] == [0, 1] and "second" in summary
    for name in ("01_first", "02_second"):
        assert (run.notebooks / f"{name}.ipynb").exists()
        html = (run.reports / f"{name}.html").read_text()
        reader = (run.reports / f"{name}.reader.html").read_text()
        assert "hello from" in html and "load_profile" in html
        assert "load_profile" not in reader, "the reader's version hides the code"
    manifest = read_json(run.manifest_path)
    assert manifest["parameters"]["name"] == "smoke"
    assert manifest["packages"]["torch"].startswith("2.13.0")
    assert manifest["notebooks"]["01_first"]["status"] == "ran"
    assert manifest["notebooks"]["02_second"]["seconds"] > 0

    pipeline.run_pipeline("smoke", output_root=out, notebook_dir=notebooks, report=False)
    manifest = read_json(run.manifest_path)
    assert manifest["notebooks"]["01_first"]["status"] == "skipped"

    # A changed upstream notebook re-runs everything after it.
    _notebook(notebooks / "01_first.ipynb", WRITE_SUMMARY.replace("{name}", "first") + "\nx = 1")
    pipeline.run_pipeline("smoke", output_root=out, notebook_dir=notebooks, report=False)
    manifest = read_json(run.manifest_path)
    assert manifest["notebooks"]["02_second"]["status"] == "ran"

    pipeline.run_pipeline("smoke", only=["2"], force=True, output_root=out, notebook_dir=notebooks, report=False)
    manifest = read_json(run.manifest_path)
    assert manifest["notebooks"]["02_second"]["status"] == "ran"


def test_changed_parameters_rerun(notebooks: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    pipeline.run_pipeline("smoke", output_root=out, notebook_dir=notebooks, report=False, only=["01"])
    pipeline.run_pipeline("smoke", output_root=out, notebook_dir=notebooks, report=False, only=["01"])
    assert read_json(out / "smoke" / "manifest.json")["notebooks"]["01_first"]["status"] == "skipped"
    pipeline.run_pipeline("smoke", output_root=out, notebook_dir=notebooks, report=False, only=["01"],
                          overrides={"data": {"split_seed": 5}})
    assert read_json(out / "smoke" / "manifest.json")["notebooks"]["01_first"]["status"] == "ran"


def test_failing_cell_names_notebook_cell_error_and_partial(notebooks: Path, tmp_path: Path) -> None:
    _notebook(notebooks / "02_second.ipynb", "x = 1\nraise ValueError('teacher exploded')")
    out = tmp_path / "out"
    with pytest.raises(pipeline.PipelineError) as err:
        pipeline.run_pipeline("smoke", output_root=out, notebook_dir=notebooks, report=False)
    msg = str(err.value)
    assert msg.startswith("02_second failed in code cell 2 (\"raise ValueError('teacher exploded')\")")
    assert "ValueError: teacher exploded" in msg
    partial = Path(msg.split("partial executed notebook: ")[1].strip())
    assert partial.exists() and partial.name == "02_second.partial.ipynb"
    assert not (out / "smoke" / "notebooks" / "02_second.ipynb").exists(), "no trusted output from a failed step"
    assert not (out / "smoke" / ".state" / "02_second.json").exists()
    assert read_json(out / "smoke" / "manifest.json")["notebooks"]["02_second"]["status"] == "failed"


def test_cli_exit_codes(notebooks: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert pipeline.main(["run", "--profile", "nope", "--output-root", str(out)]) == 1
    assert "unknown profile 'nope'" in capsys.readouterr().err
    assert not out.exists(), "nothing is written for a run that fails validation"
    assert pipeline.main(["run", "--profile", "smoke", "--set", '{"data": {"dataset": "x"}}',
                          "--output-root", str(out)]) == 1
    assert "data.dataset" in capsys.readouterr().err
    assert not out.exists()


def test_only_rejects_unknown_numbers(notebooks: Path) -> None:
    steps = discover_steps(notebooks)
    assert [s.number for s in pipeline.select_steps(steps, ["2"])] == ["02"]
    with pytest.raises(ConfigError, match="--only 07: no such notebook; allowed: 01, 02"):
        pipeline.select_steps(steps, ["07"])


# ----------------------------------------------------------------------------- step selection


def test_only_the_studys_own_notebooks_are_steps(notebooks: Path) -> None:
    # issue 13.7's instance: JupyterLab's Duplicate made 03_student-Copy1.ipynb, run as a step.
    for copy in ("01_first-Copy1.ipynb", "Untitled.ipynb", "02_second copy.ipynb", "02_Second.ipynb"):
        _notebook(notebooks / copy, "raise RuntimeError('a copy must never run')")
    steps = discover_steps(notebooks)
    assert [s.name for s in steps] == ["01_first", "02_second"]
    assert [s.name for s in pipeline.select_steps(steps, ["01"])] == ["01_first"]
    _notebook(notebooks / "02_second_v2.ipynb", "x = 1")
    with pytest.raises(ConfigError, match="two notebooks are step 02 .*02_second.ipynb, 02_second_v2.ipynb"):
        discover_steps(notebooks)


def test_the_studys_notebooks_are_the_step_table() -> None:
    assert [s.name for s in discover_steps()] == [s.name for s in steps.STEPS]


# ----------------------------------------------------------------------------- cache keys


def test_cache_key_follows_what_each_notebook_reads() -> None:
    steps = {s.number: s for s in discover_steps()}
    base = load_profile("smoke")

    def keys(cfg, library: str = "lib") -> dict[str, str]:
        out, upstream = {}, ""
        for number, step in sorted(steps.items()):
            upstream = out[number] = pipeline.step_key(step, cfg, upstream, library)
        return out

    before = keys(base)
    # issue 13.6's instance: notebook 01 reports the share of texts the teacher truncates.
    longer = keys(load_profile("smoke", {"teacher": {"max_length": 96}}))
    assert all(longer[n] != before[n] for n in before)
    # deploy is read by 05 (and reaches 06 through 05); distill by 04 and, through 04, 05 and 06;
    # batch by 06 only.
    deploy = keys(load_profile("smoke", {"deploy": {"replicas": 3}}))
    assert [n for n in before if deploy[n] != before[n]] == ["05", "06"]
    distill = keys(load_profile("smoke", {"distill": {"epochs": 3}}))
    assert [n for n in before if distill[n] != before[n]] == ["04", "05", "06"]
    batch = keys(load_profile("smoke", {"batch": {"rounds": 2}}))
    assert [n for n in before if batch[n] != before[n]] == ["06"]
    # A change to the library re-runs every notebook.
    assert all(v != before[n] for n, v in keys(base, "other-lib").items())


def test_library_digest_covers_code_not_profiles(tmp_path: Path) -> None:
    import shutil

    pkg = tmp_path / "kdutils"
    shutil.copytree(pipeline.KDUTILS_DIR, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    digest = pipeline.library_digest(pkg)
    assert digest == pipeline.library_digest(pkg)
    (pkg / "__pycache__").mkdir(exist_ok=True)
    (pkg / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert pipeline.library_digest(pkg) == digest
    text = pkg / "data" / "text.py"
    text.write_text(text.read_text() + "\n# changed\n")
    changed = pipeline.library_digest(pkg)
    assert changed != digest
    (pkg / "templates" / "paper.md.j2").write_text("x")
    with_template = pipeline.library_digest(pkg)
    assert with_template != changed
    # Profiles are covered by the parameters each notebook reads, not by the library digest.
    (pkg / "profiles" / "smoke.yaml").write_text("seeds: [9]\n")
    assert pipeline.library_digest(pkg) == with_template


def test_skipped_notebooks_keep_the_commit_they_ran_at(notebooks: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = pipeline.run_pipeline("smoke", output_root=out, notebook_dir=notebooks, report=False)
    manifest = read_json(run.manifest_path)
    head = manifest["git"]["head"]
    rec = manifest["notebooks"]["01_first"]
    assert rec["git"]["commit"] == head and rec["kdutils"] == pipeline.library_digest()
    assert set(rec["git"]) >= {"commit", "dirty", "modified", "untracked"}
    assert manifest["git"]["commit"] == head and manifest["profile_source"] == "kdutils/profiles/smoke.yaml"
    # As if 01 had run at an earlier commit: a skip must not credit its result to HEAD.
    state = run.root / ".state" / "01_first.json"
    old = read_json(state)
    old["git"]["commit"] = "0" * 40
    state.write_text(json.dumps(old))
    pipeline.run_pipeline("smoke", output_root=out, notebook_dir=notebooks, report=False)
    manifest = read_json(run.manifest_path)
    assert manifest["notebooks"]["01_first"]["status"] == "skipped"
    assert manifest["notebooks"]["01_first"]["git"]["commit"] == "0" * 40
    assert manifest["notebooks"]["02_second"]["git"]["commit"] == head
    assert manifest["git"]["commit"] is None, "two commits made these results: none of them is the run's"
    assert manifest["git"]["commits"] == {"01_first": "0" * 40, "02_second": head}


def test_git_state_names_what_is_uncommitted() -> None:
    state = git_state()
    assert len(state["commit"]) == 40
    assert isinstance(state["modified"], list) and isinstance(state["untracked"], list)
    assert state["dirty"] == bool(state["modified"] or [p for p in state["untracked"]
                                                         if p.startswith(("kdutils/", "notebooks/"))])


# ----------------------------------------------------------------------------- paths


def test_relative_profile_and_data_paths(notebooks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         rt_splits) -> None:
    # issue 13.1's instance: --profile reviews.yaml and data.path: reviews.csv failed inside notebook 01.
    study = tmp_path / "study"
    study.mkdir()
    texts = pd.concat([rt_splits.train, rt_splits.val]).head(200)
    pd.DataFrame({"review": texts["text"], "sentiment": texts["label"]}).to_csv(study / "reviews.csv", index=False)
    (study / "reviews.yaml").write_text("seeds: [0]\ndata: {dataset: file, path: reviews.csv, "
                                        "text_column: review, label_column: sentiment}\n")
    _notebook(notebooks / "01_first.ipynb",
              "from kdutils.study.config import load_profile\nfrom kdutils.study.runs import RunDir\n"
              "cfg = load_profile(profile, overrides)\nrun = RunDir.for_profile(cfg.name, output_root)\n"
              + RECORD.replace("{name}", "first").replace("{value}", "{'path': cfg.data.path, 'profile': profile}"))
    monkeypatch.chdir(study)
    run = pipeline.run_pipeline("reviews.yaml", output_root=tmp_path / "out", notebook_dir=notebooks, report=False,
                                only=["01"])
    summary, manifest = read_json(run.root / "probe.json"), read_json(run.manifest_path)
    assert summary["first"] == {"path": str(study / "reviews.csv"), "profile": str(study / "reviews.yaml")}
    assert manifest["profile_source"] == str(study / "reviews.yaml")
    assert manifest["parameters"]["data"]["path"] == str(study / "reviews.csv")


# ----------------------------------------------------------------------------- progress and console


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_progress_relay_is_throttled_and_says_where_it_is() -> None:
    clock, lines = _Clock(), []
    relay = pipeline.ProgressRelay("02_teacher", 9, lines.append, interval=60, previous_seconds=1200, clock=clock)
    relay.cell(3, "result = finetune.fine_tune(\n    settings)\n# comment")
    assert lines == []  # nothing before the first interval
    for i in range(1000):  # a tqdm bar redrawn a thousand times within one interval
        clock.t = 10 + i * 0.04
        relay.write(f"\r train:  {i // 10}%|###   | {i}/1000 [00:{i // 100:02d}<01:40, 9.9it/s]")
        relay.flush()
    assert lines == []
    clock.t = 61
    relay.tick()
    assert len(lines) == 1
    assert lines[0].startswith("[02_teacher] code cell 3/9 (settings)), 61 s in: train:  99%")
    assert "999/1000" in lines[0] and "last run took 20 min, about 19 min left" in lines[0]
    relay.tick()
    clock.t = 100
    relay.tick()
    assert len(lines) == 1, "no new output, no new line before the quiet limit"
    clock.t = 61 + 5 * 60
    relay.cell(None, "injected")  # papermill's cell is not counted
    relay.tick()
    assert len(lines) == 2 and "code cell 3/9" in lines[1]
    clock.t = 61 + 5 * 60 + 1
    relay.cell(4, "x = 1")
    clock.t += 61
    relay.tick()
    assert len(lines) == 3 and lines[2].startswith("[02_teacher] code cell 4/9 (x = 1)")
    assert "this cell has run 61 s without output" in lines[2]


PROGRESS = (
    "import sys, time\nfor i in range(12):\n"
    "    print(f'\\rscoring: {i * 10}/110 [00:0{i // 6}<00:01]', end='', file=sys.stderr, flush=True)\n"
    "    time.sleep(0.15)\nprint('done')"
)


def test_progress_reaches_the_log_and_the_console_is_quiet(notebooks: Path, tmp_path: Path,
                                                           capfd: pytest.CaptureFixture) -> None:
    _notebook(notebooks / "02_second.ipynb", PROGRESS)
    run = pipeline.run_pipeline("smoke", output_root=tmp_path / "out", notebook_dir=notebooks, report=False,
                                progress_interval=0.4)
    logged = (run.logs / "pipeline.log").read_text()
    progress = [ln for ln in logged.splitlines() if "[02_second] code cell 2/2" in ln]
    assert progress and any("scoring: " in ln for ln in progress), logged
    assert len(progress) <= 8, "throttled: at most about one line per interval"
    err = capfd.readouterr().err
    assert "without encryption" not in err and "Alternative text is missing" not in err


def test_rerun_command_is_one_line_to_paste() -> None:
    assert pipeline.rerun_command("smoke", ["01", "03"]) == (
        "python -m kdutils.pipeline run --profile smoke --only 01 03 --force")
    assert pipeline.rerun_command("/a b/r.yaml", ["02"], {"teacher": {"epochs": 1}}, "/tmp/o", force=False) == (
        "python -m kdutils.pipeline run --profile '/a b/r.yaml' --only 02 --set '{\"teacher\": {\"epochs\": 1}}' "
        "--output-root /tmp/o")


def test_cli_blames_a_bad_set_value_on_the_override(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # issue 13.13's instance: a bad --set value was reported as "invalid profile .../smoke.yaml".
    out = tmp_path / "out"
    assert pipeline.main(["run", "--profile", "smoke", "--set", '{"teacher": {"epochs": "two"}}',
                          "--output-root", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: invalid override (--set / overrides): teacher.epochs: Input should be a valid "
                          "integer, got 'two' (str)") and "smoke.yaml" not in err
    assert pipeline.main(["run", "--profile", "smoke", "--set", "[1]", "--output-root", str(out)]) == 1
    assert "must be a mapping of sections" in capsys.readouterr().err
    assert pipeline.main(["run", "--profile", "missing.yaml", "--output-root", str(out)]) == 1
    assert f"profile file not found: missing.yaml (relative paths start at {Path.cwd()})" in capsys.readouterr().err
    assert not out.exists()
