"""ONNX export and int8 quantization: the exported graphs agree with eager PyTorch on real sentences."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from serving_fixtures import ServingRun

from kdutils.inference.predictors import (
    ModelNotFound,
    OnnxPredictor,
    TorchStudentPredictor,
    TorchTeacherPredictor,
    discover,
    export_is_current,
    load_predictor,
    onnx_dir,
    split_name,
)
from kdutils.metrics import softmax

# Session fixtures (serving_run, live_server) shared by the serving tests.
pytest_plugins = ("serving_fixtures",)


def test_discover_lists_every_model_and_runtime(serving_run: ServingRun) -> None:
    entries = discover(serving_run.run)
    assert list(entries) == ["teacher", "teacher@onnx", "teacher@onnx-int8", "student_distilled",
                             "student_distilled@onnx", "student_distilled@onnx-int8"]
    # Seed rule: the lowest seed directory is served.
    assert entries["student_distilled"].source_dir.name == "seed0"
    assert entries["student_distilled@onnx-int8"].weights.name == "model.int8.onnx"
    assert split_name("student_distilled@onnx-int8") == ("student_distilled", "onnx-int8")
    assert split_name("teacher") == ("teacher", "torch")


def test_predictor_classes_and_unknown_name(serving_run: ServingRun) -> None:
    assert isinstance(load_predictor(serving_run.run, "student_distilled"), TorchStudentPredictor)
    assert isinstance(load_predictor(serving_run.run, "teacher"), TorchTeacherPredictor)
    assert isinstance(load_predictor(serving_run.run, "teacher@onnx", threads=1), OnnxPredictor)
    with pytest.raises(ModelNotFound, match="available"):
        load_predictor(serving_run.run, "student_baseline")


@pytest.mark.parametrize("base", ["student_distilled", "teacher"])
def test_onnx_agrees_with_eager(serving_run: ServingRun, base: str) -> None:
    texts = serving_run.texts
    eager = load_predictor(serving_run.run, base)
    fp32 = load_predictor(serving_run.run, f"{base}@onnx", threads=1)
    int8 = load_predictor(serving_run.run, f"{base}@onnx-int8", threads=1)
    ref = eager.predict_logits(texts, batch_size=32)
    # fp32 ONNX is the same computation: logits match to float precision, whatever the batching.
    np.testing.assert_allclose(fp32.predict_logits(texts, batch_size=17), ref, atol=1e-4)
    # batch 1 and a one-token text go through the dynamic axes too.
    np.testing.assert_allclose(fp32.predict_logits(texts[:3], batch_size=1), ref[:3], atol=1e-4)
    assert fp32.predict_logits(["ok"]).shape == (1, 2)
    # int8 changes the numbers a little, and so a decision only where the model is on the fence
    # (the fixture student is barely trained: its probabilities all lie within 0.1 of 0.5).
    q = int8.predict_logits(texts, batch_size=32)
    assert q.shape == ref.shape and np.isfinite(q).all()
    p_ref, p_q = softmax(ref), softmax(q)
    change = np.abs(p_q - p_ref).max()
    assert change < 0.05
    agree = q.argmax(1) == ref.argmax(1)
    assert agree[np.abs(p_ref[:, 1] - 0.5) > change].all() and agree.mean() >= 0.85


def test_export_metadata_and_checks(serving_run: ServingRun) -> None:
    for base in ("teacher", "student_distilled"):
        info = serving_run.export_info[base]
        meta = json.loads((onnx_dir(serving_run.run, base) / "export.json").read_text())
        assert meta["source_sha256"] == info["source_sha256"]
        checks = meta["checks"]
        assert checks["onnx"]["agreement"] == 1.0
        assert checks["onnx"]["max_abs_logit_diff"] < 1e-3
        assert abs(checks["onnx"]["accuracy_change_points"]) == 0.0
        assert checks["onnx-int8"]["n"] == len(serving_run.texts)
        # int8 scales are per row (batch-invariant); the barely trained fixture student sits within
        # 0.01 of p=0.5 on the sentences it flips, so agreement is checked loosely here and tightly
        # (no flip away from the fence) in test_onnx_agrees_with_eager.
        assert 0.85 <= checks["onnx-int8"]["agreement"] <= 1.0
        # int8 weights are about a quarter of fp32 for the teacher (matmul-dominated).
        if base == "teacher":
            assert info["size_mb"]["onnx-int8"] < 0.5 * info["size_mb"]["onnx"]
        graph = onnx.load(str(onnx_dir(serving_run.run, base) / "model.onnx"))
        names = [i.name for i in graph.graph.input]
        assert names == (["input_ids", "mask"] if base.startswith("student") else ["input_ids", "attention_mask"])
        # batch and sequence axes are symbolic, not fixed to the trace's shape.
        dims = graph.graph.input[0].type.tensor_type.shape.dim
        assert all(d.dim_param for d in dims)


def test_stale_export_is_not_served(serving_run: ServingRun, tmp_path) -> None:
    import shutil

    models = tmp_path / "models"
    shutil.copytree(serving_run.run.models, models)
    source = models / "student_distilled" / "seed0"
    assert export_is_current(onnx_dir(models, "student_distilled"), source)
    # A retrained model (different weights) makes its export stale: not listed.
    weights = source / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    names = list(discover(models))
    assert "student_distilled" in names and "student_distilled@onnx" not in names
    assert "teacher@onnx" in names


def test_second_student_export_in_one_process_keeps_dynamic_axes(serving_run: ServingRun, tmp_path) -> None:
    # The fixture already exported a student in this process; a second export used to pick up a
    # cached LSTM kernel and fix the sequence axis to the trace's length.
    from kdutils.inference.export import export_onnx
    from kdutils.inference.predictors import ort_session
    from kdutils.student.models import load_student

    source = serving_run.run.model_dir("student_distilled", 1)
    path = export_onnx(source, tmp_path / "seed1.onnx")
    model, vocab, _ = load_student(source)
    ids, mask = vocab.encode_batch(serving_run.texts[:5], 48)
    assert ids.shape[1] != 11  # not the trace's length
    got = ort_session(path, 1).run(None, {"input_ids": ids.numpy(), "mask": mask.numpy()})[0]
    np.testing.assert_allclose(got, model(ids, mask).detach().numpy(), atol=1e-4)
