"""The papermill pipeline: order, caching, --force, --only, failure messages, manifest."""

from pathlib import Path

import nbformat
import pytest

from kdutils import pipeline
from kdutils.config import ConfigError
from kdutils.runs import read_json


def _notebook(path: Path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "default"\noverrides = {}\noutput_root = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "kdutils", "display_name": "Python (kdutils)", "language": "python"}
    nbformat.write(nb, path)


WRITE_SUMMARY = (
    "from kdutils.config import load_profile\nfrom kdutils.runs import RunDir\n"
    "cfg = load_profile(profile, overrides)\nrun = RunDir.for_profile(cfg.name, output_root)\n"
    "run.update_summary({'{name}': {'seeds': list(cfg.seeds)}})\nprint('hello from {name}')"
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
    summary = read_json(run.summary_path)
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
    assert msg.startswith("02_second failed in code cell 3 (\"raise ValueError('teacher exploded')\")")
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
    steps = pipeline.discover_steps(notebooks)
    assert [s.number for s in pipeline.select_steps(steps, ["2"])] == ["02"]
    with pytest.raises(ConfigError, match="--only 07: no such notebook; allowed: 01, 02"):
        pipeline.select_steps(steps, ["07"])
