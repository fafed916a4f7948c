"""Distillation orchestration on a real slice: transfer set, teacher scoring and its cache,
distilled students, paired statistics, selection and figures."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from kdutils.data.augment import MASK_TOKEN, sentence_key
from kdutils.data.text import tokenize
from kdutils.report.distilled import (
    comparison_frame,
    plot_ablation,
    plot_accuracy_comparison,
    plot_calibration,
    plot_gain_per_seed,
    plot_training_curves,
)
from kdutils.student.distill import (
    Setting,
    agreement,
    grid_settings,
    paired_comparison,
    run_key,
    run_setting,
    save_distilled,
    select_setting,
    setting_row,
)
from kdutils.student.train import TrainSettings, encode_texts, init_student
from kdutils.student.transfer_set import (
    build_transfer_set,
    encode_rows,
    in_domain_sentences,
    score_transfer_set,
    teacher_unk_token,
)
from kdutils.study.config import StudentArch, load_profile
from kdutils.study.specs import ConfigError

matplotlib.use("Agg")

# Small but real: the architecture of the study's student, narrower so a test epoch takes a second.
ARCH = StudentArch(embedding="glove", embedding_dim=50, hidden_size=16, pooling="max", dropout=0.3)


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory) -> Path:
    """The real minilm-l6 weights cut to one layer, with a fresh 2-way head, saved like notebook 02 does."""
    from kdutils.teacher.finetune import load_pretrained
    from kdutils.teacher.weights import resolve_teacher

    base = resolve_teacher("minilm-l6")
    tokenizer, model, _ = load_pretrained(base, num_labels=2, num_layers=1)
    out = tmp_path_factory.mktemp("teacher")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "kdmodel.json").write_text(json.dumps({"kind": "teacher", "name": "teacher", "max_length": 32}))
    return out


@pytest.fixture(scope="module")
def neighbours(vocab):
    from kdutils.data.embeddings import glove_neighbours

    return glove_neighbours(vocab.itos[2:], k=5)


@pytest.fixture(scope="module")
def unlabelled(rt_splits):
    everything = [*rt_splits.train["text"], *rt_splits.val["text"], *rt_splits.test["text"]]
    return in_domain_sentences("rotten_tomatoes", 60, seed=0, reference_texts=rt_splits.train["text"],
                               exclude_texts=everything)


@pytest.fixture(scope="module")
def transfer(rt_splits, neighbours, unlabelled):
    return build_transfer_set(
        rt_splits.train["text"].tolist(), rt_splits.train["label"].tolist(), n_iter=2, p_mask=0.1, p_replace=0.1,
        p_ngram=0.25, neighbours=neighbours, seed=7,
        exclude_texts=[*rt_splits.val["text"], *rt_splits.test["text"]], teacher_unk="[UNK]",
        unlabelled=unlabelled,
    )


def test_transfer_set_composition(rt_splits, transfer) -> None:
    counts = transfer.counts()
    n_train = len(rt_splits.train)
    assert counts["train"] == n_train
    assert 0.8 * 2 * n_train < counts["augmented"] <= 2 * n_train  # a few duplicates dropped
    assert 0 < counts["unlabelled"] <= 60
    assert len(transfer) == sum(counts.values())
    # Gold labels on training rows only; augmented rows point back at their source sentence.
    assert (transfer.labels[transfer.rows(["train"])] == rt_splits.train["label"].to_numpy()).all()
    assert (transfer.labels[transfer.rows(["augmented", "unlabelled"])] == -1).all()
    aug = transfer.rows(["augmented"])
    assert ((transfer.origin[aug] >= 0) & (transfer.origin[aug] < n_train)).all()
    # The teacher reads the original training text, and its own unk token where the student's was masked.
    assert transfer.teacher_texts[:n_train] == rt_splits.train["text"].tolist()
    masked = [i for i in aug if MASK_TOKEN in transfer.tokens[i]]
    assert masked
    for i in masked[:20]:
        assert "[UNK]" in transfer.teacher_texts[i] and MASK_TOKEN not in transfer.teacher_texts[i]
    assert transfer.to_frame().shape == (len(transfer), 5)


def test_transfer_set_never_contains_evaluation_sentences(rt_splits, transfer) -> None:
    keys = [sentence_key(t) for t in transfer.tokens]
    assert len(keys) == len(set(keys))
    evaluation = {sentence_key(tokenize(t)) for t in [*rt_splits.val["text"], *rt_splits.test["text"]]}
    assert not evaluation & set(keys)


def test_transfer_set_is_seeded(rt_splits, neighbours, transfer, unlabelled) -> None:
    kwargs = {"n_iter": 2, "p_mask": 0.1, "p_replace": 0.1, "p_ngram": 0.25, "neighbours": neighbours,
              "exclude_texts": [*rt_splits.val["text"], *rt_splits.test["text"]], "teacher_unk": "[UNK]",
              "unlabelled": unlabelled}
    texts, labels = rt_splits.train["text"].tolist(), rt_splits.train["label"].tolist()
    again = build_transfer_set(texts, labels, seed=7, **kwargs)
    other = build_transfer_set(texts, labels, seed=8, **kwargs)
    assert again.tokens == transfer.tokens and again.teacher_texts == transfer.teacher_texts
    assert other.tokens != transfer.tokens


def test_in_domain_sentences(rt_splits, unlabelled) -> None:
    lengths = np.array([len(tokenize(t)) for t in rt_splits.train["text"]])
    lo, hi = np.quantile(lengths, [0.05, 0.95])
    assert len(unlabelled) == 60
    assert all(round(lo) <= len(t) <= round(hi) for t in unlabelled)
    assert in_domain_sentences("tweets", 60, seed=0, reference_texts=["a b c"], exclude_texts=[]) == []
    again = in_domain_sentences("rotten_tomatoes", 60, seed=0, reference_texts=rt_splits.train["text"],
                                exclude_texts=[*rt_splits.train["text"], *rt_splits.val["text"],
                                               *rt_splits.test["text"]])
    assert again == unlabelled


def test_teacher_scores_transfer_set_and_rebuilds_a_bad_cache(tmp_path, teacher_dir, transfer) -> None:
    from kdutils.teacher.scoring import TeacherScorer

    unk = teacher_unk_token(teacher_dir)
    assert unk == "[UNK]"
    scorer = TeacherScorer(teacher_dir, tmp_path / "cache", batch_size=64, max_length=32)
    # The unk token in a masked copy reaches the teacher as its unknown id, not as characters.
    masked = next(t for t in transfer.teacher_texts if "[UNK]" in t)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    assert tokenizer.unk_token_id in tokenizer(masked)["input_ids"]
    subset = transfer.rows(["train"])[:40].tolist() + transfer.rows(["augmented"])[:40].tolist()
    part = type(transfer)([transfer.tokens[i] for i in subset], [transfer.teacher_texts[i] for i in subset],
                          transfer.labels[subset], transfer.source[subset], transfer.origin[subset])
    fresh = scorer.score(part.teacher_texts)
    first = score_transfer_set(part, scorer)
    np.testing.assert_allclose(first, fresh, atol=1e-5)
    assert scorer.last_stats["scored"] == len(set(part.teacher_texts))
    # Cached texts are reused; texts the cache does not hold are scored, never taken from other rows.
    reversed_part = list(reversed(part.teacher_texts))
    np.testing.assert_allclose(scorer.logits(reversed_part), fresh[::-1], atol=1e-5)
    assert scorer.last_stats["scored"] == 0
    # A cache file that does not match (tampered logits) is rebuilt, not trusted.
    cache_file = scorer.cache_file
    with np.load(cache_file) as z:
        header, hashes, logits = str(z["header"]), z["hashes"], z["logits"]
    np.savez(open(cache_file, "wb"), header=np.array(header), hashes=hashes, logits=logits + 5.0)
    again = TeacherScorer(teacher_dir, tmp_path / "cache", batch_size=64, max_length=32).logits(part.teacher_texts)
    np.testing.assert_allclose(again, fresh, atol=1e-5)


@pytest.fixture(scope="module")
def small_runs(rt_splits, vocab, transfer, teacher_dir, tmp_path_factory):
    """Two distilled students (MSE on the one-layer teacher's logits) and two label-trained baselines."""
    from kdutils.teacher.scoring import TeacherScorer

    # A few hundred rows of each source keep a training epoch to a second or two.
    rows = np.concatenate([transfer.rows(["train"])[:200], transfer.rows(["augmented"])[:150],
                           transfer.rows(["unlabelled"])[:30]])
    scorer = TeacherScorer(teacher_dir, None, batch_size=128, max_length=32)
    teacher = scorer.logits([transfer.teacher_texts[i] for i in rows])
    data = encode_rows(vocab, [transfer.tokens[i] for i in rows], transfer.labels[rows], 48, teacher)
    val = encode_texts(vocab, rt_splits.val["text"].tolist(), rt_splits.val["label"].tolist(), 48)
    test = encode_texts(vocab, rt_splits.test["text"].tolist(), rt_splits.test["label"].tolist(), 48)

    def make(seed):
        return init_student(vocab, 2, ARCH, seed)

    cache = tmp_path_factory.mktemp("runs")
    training = TrainSettings(epochs=1, batch_size=64, learning_rate=1e-3, patience=1)
    mse = Setting("train+augmented+unlabelled: MSE", "train+augmented+unlabelled", "mse", 0.0)
    ce = Setting("train: labels only", "train", "ce", 1.0)
    distilled = run_setting(mse, [0, 1], make, data, val, test, training, cache_dir=cache, cache_key="k",
                            keep_models=True)
    baseline = run_setting(ce, [0, 1], make, data.subset(np.arange(200)), val, test, training)
    return {"mse": mse, "distilled": distilled, "baseline": baseline, "data": data, "val": val, "test": test,
            "make": make, "cache": cache, "training": training}


def test_distilled_student_has_the_baseline_architecture_and_caches(small_runs, vocab) -> None:
    run = small_runs["distilled"][0]
    assert run.model.config() == init_student(vocab, 2, ARCH, 0).config()
    assert len(run.history) == 1 and 0 <= run.val_accuracy <= 1
    assert run.test_logits.shape == (len(small_runs["test"]), 2)
    # Same setting, seed and data: loaded from the cache, same predictions, no training.
    bar = io.StringIO()
    again = run_setting(small_runs["mse"], [0], small_runs["make"], small_runs["data"], small_runs["val"],
                        small_runs["test"], small_runs["training"], cache_dir=small_runs["cache"], cache_key="k",
                        progress_file=bar)[0]
    assert again.from_cache
    # A seed read from the cache counts as done on the setting's bar.
    assert re.fullmatch(rf"{re.escape(small_runs['mse'].name)}: 1/1 seeds \[\d\d:\d\d\], 1 from cache",
                        _bar_states(bar)[-1])
    np.testing.assert_allclose(again.test_logits, run.test_logits, atol=1e-6)
    # Another data key is another run.
    other = run_setting(small_runs["mse"], [0], small_runs["make"], small_runs["data"], small_runs["val"],
                        small_runs["test"], small_runs["training"], cache_dir=small_runs["cache"],
                        cache_key="other")[0]
    assert not other.from_cache


def test_run_cache_key_is_unchanged() -> None:
    # Recorded before the training settings became one object: cached students stay valid while equal.
    setting = Setting("train+augmented: MSE, alpha=0", "train+augmented", "mse", 0.0, None)
    training = TrainSettings(epochs=10, batch_size=128, learning_rate=2e-3, patience=2)
    assert run_key(setting, 3, training, "datakey", code="codefp") == (
        "6c9d742ba8a92668ba62bc926602046795d4d786ff98d6b2367ef5dd3309d285")
    assert run_key(setting, 3, training, "datakey") != run_key(setting, 3, training, "datakey", code="codefp")


def _bar_states(stream: io.StringIO) -> list[str]:
    """Each state a text progress bar drew (tqdm redraws a line after a carriage return)."""
    return [s.strip() for s in stream.getvalue().replace("\n", "\r").split("\r") if s.strip()]


def test_seeds_trained_in_worker_processes_match_in_process_training(small_runs, vocab) -> None:
    from functools import partial

    bar = io.StringIO()
    runs = run_setting(small_runs["mse"], [0, 1], partial(init_student, vocab, 2, ARCH), small_runs["data"],
                       small_runs["val"], small_runs["test"], small_runs["training"], workers=2, progress_file=bar)
    # The bar lives in this process and advances as each worker's seed finishes (it used to
    # stay at 0/14: the bars were drawn inside the workers).
    counts = [re.search(r": (\d)/2 seeds", s).group(1) for s in _bar_states(bar)]
    assert counts == sorted(counts) and counts[0] == "0" and "1" in counts and counts[-1] == "2"
    for worker_run, local_run in zip(runs, small_runs["distilled"], strict=True):
        assert (worker_run.seed, worker_run.from_cache) == (local_run.seed, False)
        np.testing.assert_allclose(worker_run.test_logits, local_run.test_logits, atol=1e-5)
    with pytest.raises(ValueError, match="workers must be"):
        run_setting(small_runs["mse"], [0], small_runs["make"], small_runs["data"], small_runs["val"],
                    small_runs["test"], small_runs["training"], workers=0)


def test_save_distilled_writes_what_later_notebooks_read(tmp_path, small_runs, vocab, rt_splits) -> None:
    from kdutils.student.models import load_student

    run = small_runs["distilled"][0]
    record = save_distilled("student_distilled", run, vocab, arch=ARCH, label_names=["negative", "positive"],
                            max_length=48, model_dir=tmp_path / "models" / "seed0", metrics_dir=tmp_path / "metrics",
                            val_labels=rt_splits.val["label"].to_numpy(),
                            test_labels=rt_splits.test["label"].to_numpy(), extra_meta={"loss": "mse"})
    assert record["accuracy"] == pytest.approx(run.test_accuracy)
    model, loaded_vocab, meta = load_student(tmp_path / "models" / "seed0")
    assert loaded_vocab == vocab and meta["loss"] == "mse" and meta["kind"] == "student"
    with np.load(tmp_path / "metrics" / "student_distilled_seed0_test.npz") as z:
        np.testing.assert_allclose(z["logits"], run.test_logits)
    assert (tmp_path / "metrics" / "student_distilled_seed0_history.json").exists()


def test_paired_comparison_and_agreement(small_runs, rt_splits) -> None:
    labels = rt_splits.test["label"].to_numpy()
    distilled = {r.seed: r.test_logits for r in small_runs["distilled"]}
    baseline = {r.seed: r.test_logits for r in small_runs["baseline"]}
    out = paired_comparison(distilled, baseline, labels, n_resamples=200, seed=0)
    expected = np.mean([(distilled[s].argmax(1) == labels).mean() - (baseline[s].argmax(1) == labels).mean()
                        for s in (0, 1)]) * 100
    assert out["gain_points_mean"] == pytest.approx(expected)
    assert 0 < out["p_value"] <= 1 and "one-sided" in out["p_value_test"]
    assert [m["seed"] for m in out["mcnemar"]] == [0, 1]
    with pytest.raises(ValueError, match="seeds"):
        paired_comparison({**distilled, 5: distilled[0]}, baseline, labels, n_resamples=100)
    assert agreement(distilled[0], distilled[0]) == 1.0
    assert agreement(distilled[0], -distilled[0]) == 0.0


def test_grid_and_selection_on_validation() -> None:
    grid = grid_settings(loss="mse", alpha=0.0, temperature=2.0, grid_loss=["mse", "kl"], grid_alpha=[0.0, 0.5],
                         grid_temperature=[2.0, 4.0], data="all")
    described = [(s.loss, s.alpha, s.temperature) for s in grid]
    assert described[0] == ("mse", 0.0, None)
    assert described.count(("mse", 0.0, None)) == 1  # MSE has no temperature: once per alpha
    assert len(grid) == 2 + 2 * 2
    rows = [{"setting": "a", "val_accuracy_mean": 0.80, "accuracy_mean": 0.70},
            {"setting": "b", "val_accuracy_mean": 0.78, "accuracy_mean": 0.90},
            {"setting": "c", "val_accuracy_mean": 0.80, "accuracy_mean": 0.95}]
    assert select_setting(rows)["setting"] == "a"  # best validation; the tie keeps the earlier row
    with pytest.raises(ValueError, match="validation"):
        select_setting(rows, key="accuracy_mean_test")


def test_a_toy_loss_added_through_the_registry_alone_trains_a_student(small_runs, monkeypatch) -> None:
    # A new loss is one spec entry (kdutils.study.specs.LOSSES) and one teacher term
    # (kdutils.student.losses.TEACHER_TERMS); labels, the grid and training derive from them.
    import torch

    from kdutils.student import losses
    from kdutils.study import specs

    def l1_per_row(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
        return (student_logits - teacher_logits.to(student_logits.dtype) / temperature).abs().mean(dim=-1)

    monkeypatch.setitem(specs.LOSSES, "l1", specs.LossSpec(name="l1", label="L1", uses_temperature=True,
                                                           term="|student − teacher/T|", cite="tang2019"))
    monkeypatch.setitem(losses.TEACHER_TERMS, "l1", l1_per_row)
    assert "l1" in specs.distillation_losses()
    grid = grid_settings(loss="l1", alpha=0.5, temperature=2.0, grid_loss=["mse", "l1"], grid_alpha=[0.5],
                         grid_temperature=[2.0, 4.0], data="train")
    assert [s.name for s in grid] == ["train: L1 T=2, alpha=0.5", "train: MSE, alpha=0.5",
                                      "train: L1 T=4, alpha=0.5"]
    runs = run_setting(grid[0], [0], small_runs["make"], small_runs["data"], small_runs["val"], small_runs["test"],
                       small_runs["training"])
    assert len(runs) == 1 and len(runs[0].history) == 1 and 0 <= runs[0].val_accuracy <= 1
    assert np.isfinite(runs[0].history[0]["train_loss"])
    assert setting_row(grid[0], runs)["loss"] == "l1"


def test_figures_render(small_runs, rt_splits) -> None:
    from matplotlib.figure import Figure

    distilled = {r.seed: r.history for r in small_runs["distilled"]}
    baseline = {r.seed: r.history for r in small_runs["baseline"]}
    rows = [setting_row(small_runs["mse"], small_runs["distilled"])]
    models = {"teacher": {"accuracy": 0.87}, "teacher_L2": {"accuracy": 0.8},
              "student_baseline": {"accuracy_mean": 0.77, "accuracy_ci95": [0.76, 0.78], "per_seed": [1, 2]},
              "student_distilled": {"accuracy_mean": 0.82, "accuracy_ci95": [0.81, 0.83], "per_seed": [1, 2]}}
    assert comparison_frame(models)["model"].tolist() == ["teacher", "teacher_L2", "student_baseline",
                                                          "student_distilled"]
    labels = rt_splits.test["label"].to_numpy()
    figs = [plot_training_curves(distilled, baseline), plot_accuracy_comparison(models),
            plot_gain_per_seed([0, 1], [0.7, 0.72], [0.75, 0.74]), plot_ablation(rows),
            plot_calibration(labels, {"student_distilled": small_runs["distilled"][0].test_logits})]
    assert all(isinstance(f, Figure) for f in figs)


@pytest.mark.parametrize(
    ("override", "parameter"),
    [({"alpha": 1.5}, "distill.alpha"), ({"temperature": 0}, "distill.temperature"),
     ({"n_iter": -1}, "distill.n_iter"), ({"grid_alpha": [0.0, 2.0]}, "distill.grid_alpha"),
     ({"p_mask": 0.7, "p_replace": 0.5}, "p_mask + p_replace")],
)
def test_bad_distillation_parameters_fail_when_the_profile_loads(override, parameter) -> None:
    with pytest.raises(ConfigError, match=parameter.replace("+", r"\+")):
        load_profile("smoke", {"distill": override})


def test_summary_sections_are_what_notebook_04_wrote(tmp_path, small_runs, transfer, vocab, rt_splits) -> None:
    from kdutils.student.distill import prediction_row, summary_sections
    from kdutils.student.train import summarise_seeds
    from kdutils.student.transfer_set import unlabelled_source
    from kdutils.study.files import REPO_ROOT, json_default

    val_labels, test_labels = rt_splits.val["label"].to_numpy(), rt_splits.test["label"].to_numpy()
    headline, baseline = small_runs["distilled"], small_runs["baseline"]
    records = [save_distilled("student_distilled", r, vocab, arch=ARCH, label_names=["negative", "positive"],
                              max_length=48, model_dir=tmp_path / f"seed{r.seed}", metrics_dir=tmp_path / "metrics",
                              val_labels=val_labels, test_labels=test_labels) for r in headline]
    seeds = [r.seed for r in headline]
    comparison = paired_comparison({r.seed: r.test_logits for r in headline},
                                   {r.seed: r.test_logits for r in baseline}, test_labels, n_resamples=200)
    # The baseline's logits stand in for the teacher's: agreement is a share of matching labels either way.
    agree = {r.seed: agreement(r.test_logits, baseline[0].test_logits) for r in headline}
    agree_baseline = {r.seed: agreement(r.test_logits, baseline[0].test_logits) for r in baseline}
    ablation_rows = [prediction_row(Setting("train: labels only (baseline)", "train", "ce", 1.0),
                                    {r.seed: r.val_logits for r in baseline}, {r.seed: r.test_logits for r in baseline},
                                    val_labels, test_labels),
                     setting_row(small_runs["mse"], headline)]
    smoke = json.loads((REPO_ROOT / "tests" / "fixtures" / "smoke_summary.json").read_text())
    teacher_entry, score_stats = smoke["models"]["teacher"], smoke["distillation"]["teacher_scoring"]
    chosen, training, counts = small_runs["mse"], small_runs["training"], transfer.counts()
    source = unlabelled_source("rotten_tomatoes", 1)

    entry, section = summary_sections(
        records, comparison, seeds=seeds, agreement=agree, baseline_agreement=agree_baseline, transfer=transfer,
        chosen=chosen, training=training, unlabelled_requested=60, unlabelled_source=source,
        ablation_seeds=seeds, ablation_rows=ablation_rows, teacher=teacher_entry, teacher_scoring=score_stats,
        selection_runs=baseline, headline_runs=headline)

    # What notebook 04 assembled by hand before this function existed, for the same inputs.
    old_entry = summarise_seeds(records)
    old_entry["teacher_agreement"] = float(np.mean(list(agree.values())))
    old_entry["teacher_agreement_per_seed"] = [agree[s] for s in seeds]
    size_ratio = teacher_entry["size_mb"] / old_entry["size_mb"] if teacher_entry.get("size_mb") else None
    params_ratio = teacher_entry["params"] / old_entry["params"] if teacher_entry.get("params") else None
    old_section = {
        **{k: comparison[k] for k in ("gain_points_mean", "gain_points_std", "gain_ci95", "gain_points_per_seed",
                                       "p_value", "p_value_test", "bootstrap_gain_ci95_points", "mcnemar",
                                       "mcnemar_test")},
        "seeds": seeds,
        "transfer_set_size": len(transfer),
        "transfer_set": counts,
        "loss": chosen.loss, "alpha": chosen.alpha, "temperature": chosen.temperature,
        "n_iter": 2, "p_mask": 0.1, "p_replace": 0.1, "p_ngram": 0.25,
        "unlabelled": counts["unlabelled"], "unlabelled_requested": 60, "unlabelled_source": source,
        "epochs": training.epochs, "batch_size": training.batch_size,
        "ablation_seeds": seeds,
        "ablation": [{k: r[k] for k in ("setting", "data", "loss", "alpha", "temperature", "seeds", "accuracy_mean",
                                        "accuracy_ci95", "val_accuracy_mean")} for r in ablation_rows],
        "selected_on": "validation",
        "baseline_teacher_agreement": float(np.mean(list(agree_baseline.values()))),
        "size_ratio_teacher_over_student": size_ratio,
        "params_ratio_teacher_over_student": params_ratio,
        "teacher_scoring": score_stats,
        "train_seconds_total": float(sum(r.seconds for r in baseline if not r.from_cache)
                                     + sum(r.seconds for r in headline if not r.from_cache)),
    }

    def written(value):
        return json.dumps(value, default=json_default)

    assert written(entry.record()) == written(old_entry), "same keys, values and order"
    assert written(section.record()) == written(old_section)
    assert section.size_ratio_teacher_over_student > 20 and entry.n_seeds == len(seeds)


def _inline_targets(comparison: dict, entry, distillation, models: dict, n_seeds: int) -> list[dict]:
    """Notebook 04's targets table as its cell computed it before distill.evaluate_targets existed."""
    from kdutils import report

    gain, ci, p = comparison["gain_points_mean"], comparison["gain_ci95"], comparison["p_value"]
    interval = (f"95% interval {report.points_ci(ci, 2)} points over {n_seeds} seeds" if ci
                else f"no interval over {n_seeds} seeds (none below {report.MIN_SEEDS_FOR_INTERVAL})")
    verdict = report.p_clause(p) + (": significant at the 0.05 level" if p < 0.05 else ": not significant at the 0.05 level")
    verdict += report.significance_caveat(p < 0.05, ci, n_seeds)
    d_acc = entry.accuracy_mean
    size_ratio, params_ratio = distillation.size_ratio_teacher_over_student, distillation.params_ratio_teacher_over_student
    b_acc = models["student_baseline"]["accuracy_mean"]
    tfidf = models.get("tfidf_logreg", {}).get("accuracy_mean")
    teacher_entry = models.get("teacher", {})
    checks = [
        ("gain of at least 3 points", gain >= 3.0, f"{gain:+.2f} points ({100 * b_acc:.2f}% -> {100 * d_acc:.2f}%)"),
        # Nothing to judge by (no interval, no TF-IDF, no size): not measured (None), not missed.
        ("95% interval of the gain above zero", ci[0] > 0 if ci else None, interval),
        ("paired bootstrap p < 0.05", p < 0.05, f"{verdict} ({comparison['p_value_test']})"),
        ("distilled student above TF-IDF", None if tfidf is None else d_acc > tfidf,
         "no TF-IDF result in summary.json" if tfidf is None else f"{100 * d_acc:.2f}% vs {100 * tfidf:.2f}%"),
        ("student at least 20x smaller than the teacher", None if size_ratio is None else size_ratio >= 20,
         "teacher size unknown" if size_ratio is None else
         f"{size_ratio:.1f}x on disk ({teacher_entry['size_mb']:.1f} MB vs {entry.size_mb:.2f} MB), "
         f"{params_ratio:.1f}x in parameters"),
    ]
    return [{"target": t, "met": ok, "measured": m} for t, ok, m in checks]


def test_targets_are_what_notebook_04_computed_inline() -> None:
    from kdutils.report.distilled import (
        evaluate_targets,
        gain_interval_phrase,
        significance_phrase,
    )
    from kdutils.study.files import REPO_ROOT
    from kdutils.study.summary import load_summary

    smoke = load_summary(REPO_ROOT / "tests" / "fixtures" / "smoke_summary.json")
    entry, section, models = smoke.models.student_distilled, smoke.distillation, smoke.models
    raw_models = {k: v for k, v in models.record().items() if k != "student_distilled"}
    # As written (2 seeds, no interval, significant), then: an interval that includes zero with p above
    # 0.05 and no TF-IDF result; an interval above zero, a small gain and no teacher size.
    cases = [(section, raw_models),
             (section.model_copy(update={"gain_ci95": (-0.4, 6.1), "p_value": 0.2, "seeds": [0, 1, 2, 3, 4]}),
              {k: v for k, v in raw_models.items() if k != "tfidf_logreg"}),
             (section.model_copy(update={"gain_ci95": (0.5, 1.5), "gain_points_mean": 1.0, "p_value": 0.001,
                                         "size_ratio_teacher_over_student": None}), raw_models)]
    for distillation, raw in cases:
        comparison = distillation.record()
        typed = models.model_copy(update={"tfidf_logreg": None}) if "tfidf_logreg" not in raw else models
        rows = evaluate_targets(entry, distillation, typed, 3.0)
        assert rows == _inline_targets(comparison, entry, distillation, raw, len(distillation.seeds))
        assert [r["target"] for r in rows][0] == "gain of at least 3 points" and len(rows) == 5
        n = len(distillation.seeds)
        assert rows[1]["measured"] == gain_interval_phrase(distillation.gain_ci95, n)
        assert rows[2]["measured"].startswith(significance_phrase(distillation.p_value, distillation.gain_ci95, n))
    assert [r["met"] for r in evaluate_targets(entry, section, models, 3.0)] == [True, None, True, False, True]
    assert [r["met"] for r in evaluate_targets(entry, cases[2][0], models, 3.0)][-1] is None  # no teacher size
    # The profile's targets: a higher gain bar, and a share of the teacher-baseline gap.
    t, b, d = models.teacher.accuracy, models.student_baseline.accuracy_mean, entry.accuracy_mean
    share = (d - b) / (t - b)
    rows = evaluate_targets(entry, section, models, section.gain_points_mean + 0.01, gap_target=share + 0.01)
    assert rows[0]["target"] == f"gain of at least {section.gain_points_mean + 0.01:g} points" and rows[0]["met"] is False
    assert rows[-1]["target"] == f"at least {100 * (share + 0.01):g}% of the teacher-baseline gap closed"
    assert rows[-1]["met"] is False and rows[-1]["measured"].startswith(f"{100 * share:.0f}% of {100 * (t - b):.2f} points")
    assert evaluate_targets(entry, section, models, 3.0, gap_target=share - 0.01)[-1]["met"]
    # The teacher's own bar comes first; the rows fit summary.json's targets.distillation.
    for bar, met in ((t - 0.001, True), (t + 0.001, False)):
        rows = evaluate_targets(entry, section, models, 3.0, teacher_target=bar)
        assert rows[0] == {"target": f"teacher test accuracy at least {100 * bar:g}%", "met": met,
                           "measured": f"{100 * t:.2f}%"} and len(rows) == 6
    # Thresholds print as given, not rounded to a bar the check does not use.
    assert evaluate_targets(entry, section, models, 3.25, teacher_target=0.885)[:2][0]["target"] == \
        "teacher test accuracy at least 88.5%"
    assert evaluate_targets(entry, section, models, 3.25)[0]["target"] == "gain of at least 3.25 points"
    # Without a teacher entry: the teacher and gap targets are not measured.
    no_ratios = section.model_copy(update={"size_ratio_teacher_over_student": None,
                                           "params_ratio_teacher_over_student": None})
    alone = evaluate_targets(entry, no_ratios, models.model_copy(update={"teacher": None}), 3.0, gap_target=0.5,
                             teacher_target=0.8)
    assert (alone[0]["met"], alone[0]["measured"]) == (None, "no teacher entry") and alone[-1]["met"] is None
    from kdutils.study.summary import Summary
    Summary.from_dict({"targets": {"distillation": rows}})
