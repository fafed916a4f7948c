"""Training loop, student experiment helpers and the TF-IDF reference, on a real rotten_tomatoes slice."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdutils.data.text import Vocab
from kdutils.student.baselines import save_tfidf, train_tfidf_logreg
from kdutils.student.models import BiLSTMClassifier, load_student
from kdutils.student.train import (
    EncodedSet,
    TrainSettings,
    cross_entropy_loss,
    encode_texts,
    fit_student,
    init_student,
    length_bucketed_batches,
    predict_logits,
    summarise_seeds,
    train_classifier,
)
from kdutils.study.config import StudentArch, load_profile
from kdutils.study.files import json_default
from kdutils.study.summary import SeededEntry

SMALL = StudentArch(embedding="random", embedding_dim=16, hidden_size=16, dropout=0.2)
LABELS = ["negative", "positive"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def sets(vocab: Vocab, rt_splits) -> dict[str, EncodedSet]:
    return {name: encode_texts(vocab, df.text.tolist(), df.label.to_numpy(), 48) for name, df in rt_splits.items()}


def _train(vocab: Vocab, sets, seed: int = 0, **kw):
    model = init_student(vocab, 2, SMALL, seed)
    args = {"loss_fn": cross_entropy_loss, "epochs": 2, "batch_size": 32, "lr": 2e-3, "patience": 2, "seed": seed}
    return model, train_classifier(model, sets["train"], sets["val"], **(args | kw))


def test_training_records_history_and_keeps_best_weights(vocab: Vocab, sets) -> None:
    model, result = _train(vocab, sets)
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert set(result.history[0]) >= {"epoch", "train_loss", "val_accuracy", "val_loss"}
    best = max(result.history, key=lambda h: (h["val_accuracy"], -h["epoch"]))
    assert result.best_epoch == best["epoch"] and result.best_val_accuracy == best["val_accuracy"]
    # The model ends holding the best weights, and they reproduce the best validation accuracy.
    assert all(torch.equal(v, result.state_dict[k]) for k, v in model.state_dict().items())
    acc = (predict_logits(model, sets["val"]).argmax(1) == sets["val"].labels.numpy()).mean()
    assert acc == pytest.approx(result.best_val_accuracy)
    assert result.seconds > 0


def test_same_seed_gives_identical_training(vocab: Vocab, sets) -> None:
    _, a = _train(vocab, sets, seed=5, epochs=1)
    _, b = _train(vocab, sets, seed=5, epochs=1)
    _, c = _train(vocab, sets, seed=6, epochs=1)
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert a.history[0]["train_loss"] == b.history[0]["train_loss"]
    assert not all(torch.equal(a.state_dict[k], c.state_dict[k]) for k in a.state_dict)


def test_early_stopping_after_patience(vocab: Vocab, sets) -> None:
    # A vanishing learning rate: validation accuracy cannot improve after epoch 1.
    _, result = _train(vocab, sets, epochs=10, patience=2, lr=1e-12)
    assert result.best_epoch == 1 and len(result.history) == 3


def test_generic_loss_on_teacher_logits_with_unlabelled_rows(vocab: Vocab, sets) -> None:
    train = sets["train"]
    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(len(train), 2)).astype(np.float32)
    unlabelled = EncodedSet(train.ids, train.mask, torch.full((len(train),), -1), teacher)
    seen = []

    def mse(logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None) -> torch.Tensor:
        assert teacher_logits is not None and teacher_logits.shape == logits.shape
        seen.append(int((labels == -1).sum()))
        return F.mse_loss(logits, teacher_logits)

    model = init_student(vocab, 2, SMALL, 0)
    result = train_classifier(model, unlabelled, sets["val"], loss_fn=mse, epochs=1, batch_size=64, lr=1e-2,
                              patience=1, seed=0)
    assert sum(seen) == len(train) and np.isfinite(result.history[0]["train_loss"])
    # Cross-entropy on a batch without labels contributes nothing (and no NaN).
    logits = torch.randn(4, 2, requires_grad=True)
    loss = cross_entropy_loss(logits, torch.full((4,), -1))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None and not logits.grad.any()


def test_bucketed_batches_cover_every_row_once(sets) -> None:
    lengths = sets["train"].lengths
    batches = length_bucketed_batches(lengths, 32, torch.Generator().manual_seed(0), bucket_factor=4)
    rows = torch.cat(batches)
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    # Bucketing cuts padding compared with random batches.
    padded = sum(len(b) * int(lengths[b].max()) for b in batches)
    random_batches = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(0)).split(32)
    assert padded < sum(len(b) * int(lengths[b].max()) for b in random_batches)


def test_predict_logits_keeps_row_order(vocab: Vocab, sets) -> None:
    model = BiLSTMClassifier(len(vocab), 2, 8, 8).eval()
    val = sets["val"]
    got = predict_logits(model, (val.ids, val.mask), batch_size=7)
    with torch.no_grad():
        ref = model(val.ids, val.mask).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_encoded_set_rejects_bad_shapes(sets) -> None:
    s = sets["val"]
    with pytest.raises(ValueError, match="labels"):
        EncodedSet(s.ids, s.mask, s.labels[:-1])
    with pytest.raises(ValueError, match="at least one real token"):
        EncodedSet(s.ids, torch.zeros_like(s.mask), s.labels)
    with pytest.raises(ValueError, match="teacher_logits"):
        EncodedSet(s.ids, s.mask, s.labels, np.zeros((3, 2)))


def test_fit_student_saves_model_predictions_and_summary(vocab: Vocab, sets, tmp_run) -> None:
    records = []
    for seed in (0, 1):
        records.append(fit_student("student_test", SMALL, vocab, sets["train"], sets["val"], sets["test"],
                                   TrainSettings(epochs=1, batch_size=32, learning_rate=2e-3, patience=1),
                                   seed=seed, label_names=LABELS, max_length=48,
                                   model_dir=tmp_run.model_dir("student_test", seed), metrics_dir=tmp_run.metrics))
        npz = np.load(tmp_run.metrics / f"student_test_seed{seed}_test.npz")
        assert npz["logits"].shape == (len(sets["test"]), 2)
        np.testing.assert_array_equal(npz["labels"], sets["test"].labels.numpy())
        assert (tmp_run.metrics / f"student_test_seed{seed}_val.npz").exists()
        model, _, meta = load_student(tmp_run.model_dir("student_test", seed))
        np.testing.assert_allclose(predict_logits(model, sets["test"]), npz["logits"], atol=1e-5)
        assert meta["seed"] == seed and meta["test_accuracy"] == records[-1]["accuracy"]
    summary = summarise_seeds(records)
    assert set(summary) >= {"accuracy_mean", "accuracy_std", "accuracy_ci95", "macro_f1_mean", "per_seed",
                            "params", "size_mb"}
    # Two seeds: too few for an interval over seeds (kdutils.stats.MIN_SEEDS_FOR_INTERVAL).
    assert summary["accuracy_ci95"] is None and summary["n_seeds"] == 2
    assert [r["seed"] for r in summary["per_seed"]] == [0, 1]
    assert set(summary["per_seed"][0]) >= {"seed", "accuracy", "macro_f1", "best_epoch", "train_seconds"}
    # The entry fits the summary.json contract as the notebooks write it (numpy-aware JSON).
    entry = SeededEntry.model_validate(json.loads(json.dumps(summary, default=json_default)))
    assert entry.accuracy_ci95 is None and entry.n_seeds == 2


def test_tfidf_reference_picks_c_on_validation(rt_splits, tmp_path) -> None:
    tr, va, te = rt_splits.train, rt_splits.val, rt_splits.test
    result = train_tfidf_logreg(tr.text, tr.label, va.text, va.label, C_grid=(0.5, 8.0))
    assert result.C in (0.5, 8.0) and len(result.grid) == 2
    assert result.val_accuracy == max(g["val_accuracy"] for g in result.grid)
    assert result.params == result.pipeline.named_steps["logreg"].coef_.size + 1
    acc = (result.pipeline.predict(te.text.tolist()) == te.label.to_numpy()).mean()
    assert acc > 0.55  # 400 training sentences: well above chance, far from the full-data ~78%
    assert result.logits(te.text.tolist()[:3]).shape == (3, 2)
    save_tfidf(tmp_path / "tfidf", result, {"name": "tfidf_logreg", "label_names": LABELS})
    assert (tmp_path / "tfidf" / "kdmodel.json").exists()
    with pytest.raises(ValueError, match="C_grid"):
        train_tfidf_logreg(tr.text, tr.label, va.text, va.label, C_grid=(0.0,))


def test_fit_student_reads_back_a_finished_run_and_retrains_a_changed_one(vocab: Vocab, sets, tmp_run) -> None:
    training = TrainSettings(epochs=1, batch_size=32, learning_rate=2e-3, patience=1)
    args = {"seed": 0, "label_names": LABELS, "max_length": 48, "model_dir": tmp_run.model_dir("student_test", 0),
            "metrics_dir": tmp_run.metrics}
    first = fit_student("student_test", SMALL, vocab, sets["train"], sets["val"], sets["test"], training, **args)
    weights = tmp_run.model_dir("student_test", 0) / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    again = fit_student("student_test", SMALL, vocab, sets["train"], sets["val"], sets["test"], training, **args)
    assert again == first, "a finished run (same data, settings and code) is read back, record for record"
    assert weights.stat().st_mtime_ns == stamp, "and not retrained"

    # A missing prediction file (interrupted before the model was saved) or changed settings retrain.
    (tmp_run.metrics / "student_test_seed0_val.npz").unlink()
    fit_student("student_test", SMALL, vocab, sets["train"], sets["val"], sets["test"], training, **args)
    assert weights.stat().st_mtime_ns != stamp
    stamp = weights.stat().st_mtime_ns
    fit_student("student_test", SMALL, vocab, sets["train"], sets["val"], sets["test"],
                replace(training, learning_rate=1e-3), **args)
    assert weights.stat().st_mtime_ns != stamp


def test_train_settings_come_from_the_profile_for_each_student() -> None:
    cfg = load_profile("default")
    sc, dc = cfg.student, cfg.distill
    assert TrainSettings.from_config(sc, "student_baseline") == TrainSettings(sc.epochs, sc.batch_size, sc.learning_rate, sc.patience)
    assert TrainSettings.from_config(sc, "student_original") == TrainSettings(
        sc.original_epochs, sc.batch_size, sc.learning_rate, sc.original_patience)
    # The distilled student keeps the baseline's learning rate and takes distill's schedule.
    assert TrainSettings.from_config(sc, "student_distilled", dc) == TrainSettings(dc.epochs, dc.batch_size, sc.learning_rate, dc.patience)
    with pytest.raises(ValueError, match="unknown student 'teacher'"):
        TrainSettings.from_config(sc, "teacher")
    with pytest.raises(ValueError, match="distill section"):
        TrainSettings.from_config(sc, "student_distilled")


def test_code_fingerprint_covers_the_modules_training_imports(tmp_path: Path) -> None:
    # Derived from the imports, not listed by hand: the loop, the model, the losses, the tokenizer and
    # GloVe; the run's bookkeeping (study/) and shared modules are left out.
    from kdutils.student.train import code_fingerprint, student_code_modules
    from kdutils.study import source

    names = student_code_modules()
    assert {"kdutils.student.train", "kdutils.student.models", "kdutils.student.losses",
            "kdutils.data.text", "kdutils.data.embeddings"} <= set(names)
    assert all(source.sub_package(n) in ("student", "data") for n in names)
    assert "kdutils.student.distill" not in names  # it imports train, train does not import it
    assert code_fingerprint() == code_fingerprint()
    # A module imported inside a function counts too.
    pkg = tmp_path / "kdutils"
    (pkg / "student").mkdir(parents=True)
    (pkg / "data").mkdir()
    for init in (pkg / "__init__.py", pkg / "student" / "__init__.py", pkg / "data" / "__init__.py"):
        init.write_text("")
    (pkg / "student" / "train.py").write_text("def f():\n    from kdutils.data import text\n")
    (pkg / "data" / "text.py").write_text("from kdutils.study import files\n")
    assert source.import_closure(["kdutils.student.train"], ("student", "data"), pkg) == [
        "kdutils.data.text", "kdutils.student.train"]
