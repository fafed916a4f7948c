"""The teacher rate probe: real fine-tuning steps at each depth, stopped early, and the projection."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
from cpu_classes import inject_cpu

from kdutils.data.corpora import Splits, write_splits
from kdutils.study.config import load_profile
from kdutils.study.files import read_json
from kdutils.study.runs import RunDir
from kdutils.teacher import rate
from kdutils.teacher.finetune import FineTuneJob, FineTuneSettings, fine_tune
from kdutils.teacher.weights import resolve_teacher


@pytest.mark.parametrize("cpu", ["avx2", "amx"])
def test_probe_times_steps_per_depth_and_projects(cpu: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inject_cpu(monkeypatch, cpu)  # fp32, then bf16 autocast (emulated where the CPU lacks it)
    cfg = load_profile("smoke", {"data": {"max_train": 96, "max_val": 40, "max_test": 40}})
    result = rate.probe(cfg, steps=2, warmup=1, score_rows=16, output_root=tmp_path)

    assert read_json(tmp_path / "smoke" / "metrics" / rate.RATE_FILE) == result
    full, truncated = result["depths"]
    assert (full["depth"], truncated["depth"]) == (6, 2) and truncated["params"] < full["params"]
    # Stopped after warm-up + 2 steps: far fewer than the 6 steps of one epoch over 96 rows.
    assert full["steps_timed"] == truncated["steps_timed"] == 2
    assert full["steps_per_epoch"] == math.ceil(96 / cfg.teacher.batch_size)
    for row in result["depths"]:
        eval_s = result["n_val"] / row["score_rows_per_s"]
        expected = row["epochs"] * (row["steps_per_epoch"] * row["step_seconds_median"] + eval_s)
        assert row["projected_seconds"] == pytest.approx(expected + result["n_test"] / row["score_rows_per_s"])
    assert result["projected_notebook02_seconds"] == pytest.approx(full["projected_seconds"] + truncated["projected_seconds"])
    assert result["transfer_set_rows_upper_bound"] == 96 * (1 + cfg.distill.n_iter) + cfg.distill.unlabelled
    table = rate.rate_table(result)
    assert list(table["layers"]) == [6, 2]
    assert {row["precision"] for row in result["depths"]} == {"bf16" if cpu == "amx" else "fp32"}


def test_modes_score_a_finetuned_teacher_of_another_run(rt_splits: Splits, tmp_path: Path) -> None:
    """``--modes`` under one profile finds the teacher another run fine-tuned, and reports the change
    in validation accuracy on that run's own validation split."""
    other = RunDir(tmp_path / "outputs" / "default")
    write_splits(rt_splits, other)
    job = FineTuneJob(rt_splits.train.iloc[:32], rt_splits.val.iloc[:32], rt_splits.label_names,
                      other.model_dir("teacher"), tmp_path / "scratch")
    tiny = FineTuneSettings(max_length=24, epochs=1, batch_size=16, num_layers=1, patience=0)
    fine_tune(resolve_teacher("minilm-l6"), job, tiny, name="teacher", teacher="minilm-l6", progress=False)

    cfg = load_profile("smoke", {"data": {"max_train": 32, "max_val": 16, "max_test": 16}})
    run = RunDir.for_profile(cfg.name, tmp_path / "outputs")
    found = rate.finetuned_teacher(run, "minilm-l6", 2)
    assert found is not None and found[0] == other.model_dir("teacher") and len(found[1]) == len(rt_splits.val)
    assert rate.finetuned_teacher(run, "mpnet-12", 2) is None
    assert rate.finetuned_teacher(run, "minilm-l6", 3) is None, "another label set is another task"

    before = sorted(p.name for p in other.model_dir("teacher").iterdir())
    temps = set(Path(tempfile.gettempdir()).glob("teacher-modes-*"))
    result = rate.compare_modes(cfg, ["minilm-l6"], steps=1, warmup=0, score_batches=1,
                                        output_root=tmp_path / "outputs", write=False)
    # The probe writes nothing into the run it borrows the teacher from, and leaves no temp folder.
    assert sorted(p.name for p in other.model_dir("teacher").iterdir()) == before
    assert set(Path(tempfile.gettempdir()).glob("teacher-modes-*")) == temps
    row = result["teachers"]["minilm-l6"]
    assert row["scored_model"] == "fine-tuned" and row["scored_run"] == str(other.root)
    assert row["n_val_scored"] == len(rt_splits.val)
    for mode in ("fp32", "bf16", "onnx"):
        assert row["scoring"][mode]["val_accuracy_change_points"] is not None, mode
    assert row["scoring"]["fp32"]["val_accuracy_change_points"] == 0.0
    assert result["detected"]["mode"] == "fp32", "the session's injected AVX2 class"


def test_probe_rejects_zero_steps() -> None:
    with pytest.raises(ValueError, match="steps must be"):
        rate.probe(load_profile("smoke"), steps=0, write=False)


def test_command_line_reports_a_bad_profile(capsys: pytest.CaptureFixture) -> None:
    from kdutils import pipeline

    assert pipeline.main(["teacher-rate", "--profile", "no-such-profile"]) == 1
    assert "no-such-profile" in capsys.readouterr().err


def test_describe_names_machine_and_projection() -> None:
    depth = {"depth": 12, "params": 109_488_002, "epochs": 3, "step_seconds_median": 6.33, "train_rows_per_s": 5.06,
             "score_rows_per_s": 11.7, "projected_seconds": 4356.0}
    result = {"teacher": "mpnet-12", "machine": {"cpu": "AMD EPYC", "cores": 2}, "torch_threads": 2,
              "other_load_share": 0.01, "depths": [depth], "projected_notebook02_seconds": 4356.0,
              "projected_teacher_seconds": 4356.0, "projected_depth_sweep_seconds": 0.0,
              "transfer_set_rows_upper_bound": 173_283, "projected_transfer_scoring_seconds": 14_810.0}
    text = rate.describe(result)
    assert "mpnet-12 on AMD EPYC (2 cores)" in text and "projected 1.21 h" in text and "173,283 rows" in text
