"""A saved model's kdmodel.json: read back as written, and written all or nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kdutils.study.model_files import META_FILE, meta_path, read_meta, weights_path, write_meta


def test_meta_round_trip_keeps_order_and_plain_values(tmp_path: Path) -> None:
    meta = {"kind": "student", "name": "student_baseline", "label_names": ["negative", "positive"],
            "max_length": 128, "val_accuracy": np.float32(0.75), "params": np.int64(1234),
            "base_model": tmp_path / "base", "history": [{"epoch": 1, "val_accuracy": 0.7}]}
    path = write_meta(tmp_path / "m", meta)
    assert path == meta_path(tmp_path / "m") == tmp_path / "m" / "kdmodel.json"
    back = read_meta(tmp_path / "m")
    assert list(back) == list(meta)
    assert back["val_accuracy"] == 0.75 and back["params"] == 1234 and back["base_model"] == str(tmp_path / "base")
    assert back["history"] == meta["history"]
    assert path.read_text().endswith("}\n") and '\n  "kind": "student",' in path.read_text()


def test_failed_write_leaves_no_partial_file(tmp_path: Path) -> None:
    model_dir = tmp_path / "teacher"
    with pytest.raises(TypeError):
        write_meta(model_dir, {"kind": "teacher", "bad": object()})
    assert not meta_path(model_dir).exists() and list(model_dir.iterdir()) == []

    write_meta(model_dir, {"kind": "teacher", "name": "teacher"})
    before = meta_path(model_dir).read_bytes()
    with pytest.raises(TypeError):
        write_meta(model_dir, {"kind": "teacher", "name": "changed", "bad": {1, 2}})
    assert meta_path(model_dir).read_bytes() == before
    assert [p.name for p in model_dir.iterdir()] == [META_FILE]


def test_missing_meta_is_a_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_meta(tmp_path)
    assert weights_path(tmp_path) == tmp_path / "model.safetensors"
