"""The teacher rate probe: real fine-tuning steps at each depth, stopped early, and the projection."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from kdutils.study.config import load_profile
from kdutils.study.files import read_json
from kdutils.teacher import rate


def test_probe_times_steps_per_depth_and_projects(tmp_path: Path) -> None:
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
