"""The teacher rate probe: real fine-tuning steps at each depth, stopped early, and the projection."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from kdutils import teacher_rate
from kdutils.config import load_profile
from kdutils.runs import read_json


def test_probe_times_steps_per_depth_and_projects(tmp_path: Path) -> None:
    cfg = load_profile("smoke", {"data": {"max_train": 96, "max_val": 40, "max_test": 40}})
    result = teacher_rate.probe(cfg, steps=2, warmup=1, score_rows=16, output_root=tmp_path)

    assert read_json(tmp_path / "smoke" / "metrics" / teacher_rate.RATE_FILE) == result
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
    table = teacher_rate.rate_table(result)
    assert list(table["layers"]) == [6, 2]


def test_probe_rejects_zero_steps() -> None:
    with pytest.raises(ValueError, match="steps must be"):
        teacher_rate.probe(load_profile("smoke"), steps=0, write=False)
