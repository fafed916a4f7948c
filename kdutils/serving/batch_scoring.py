"""Batch scoring benchmarked file to file (notebook 06): the distilled student, the teacher, the
transformers pipeline a user would pick for the teacher, and the local and Ray engines.

:func:`batch_scoring_benchmark` times :func:`kdutils.inference.batch.predict_file` (through
:func:`kdutils.inference.batch_bench.bench_batch_predict`) and :func:`pipeline_peer` in interleaved
rounds, so a machine that gets busier slows every configuration alike, and returns the summary's
``batch_scoring`` section; :func:`evaluate_targets` judges it. FLOPs per sentence are
:func:`kdutils.serving.micro.flops_per_sentence` at the corpus's mean student length.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kdutils.host import OtherLoad, cpu_count, matmul_peak_gflops
from kdutils.inference.batch_bench import bench_batch_predict
from kdutils.inference.batch_engines import BATCH_SIZE
from kdutils.inference.predictors import find_entry, make_predictor
from kdutils.machine import Precision, cpu_name
from kdutils.serving.micro import flops_per_sentence

STUDENT = "student_distilled@onnx"
STUDENT_INT8 = "student_distilled@onnx-int8"
TEACHER = "teacher"
TEACHER_ONNX = "teacher@onnx"
PEER = "transformers-pipeline"

# The targets of issue 22 (judged by evaluate_targets).
TARGET_FLOOR_SHARE = 0.40  # ONNX student file to file, share of its FLOP floor
TARGET_OVER_PEER = 2.0  # our command running the teacher, over the transformers pipeline
TARGET_RAY_OVER_LOCAL = 0.8  # Ray 2 actors over local 2 workers, start-up excluded


def pipeline_peer(model_dir: str | Path, corpus: str | Path, output: str | Path, *, threads: int,
                  batch_size: int, max_length: int) -> dict[str, Any]:
    """Score ``corpus`` (Parquet, column ``text``) with transformers ``pipeline("text-classification")``
    as a user would, file to file: read the texts, build the pipeline from the saved teacher folder
    ``model_dir``, call it on the list with ``batch_size`` (its documented batching argument),
    ``truncation=True`` at ``max_length`` tokens (as our teacher predictor truncates) and
    ``top_k=None`` (every class's probability), and write Parquet (``label``, ``prob_<label>``).

    Runs in this process on ``threads`` torch threads (restored afterwards). Returns ``sentences``,
    ``seconds`` (whole job, pipeline construction included), ``startup_s`` (reading and construction)
    and ``labels`` (the predicted label names, input order).
    """
    import torch
    from transformers import pipeline

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        texts = pq.read_table(corpus, columns=["text"]).column("text").to_pylist()
        clf = pipeline("text-classification", model=str(model_dir), device="cpu")
        ready = time.perf_counter()
        out = clf(texts, batch_size=batch_size, truncation=True, max_length=max_length, top_k=None)
        names = sorted({d["label"] for d in out[0]})
        probs = {n: [next(d["score"] for d in row if d["label"] == n) for row in out] for n in names}
        labels = [max(row, key=lambda d: d["score"])["label"] for row in out]
        pq.write_table(pa.table({"label": labels, **{f"prob_{n}": v for n, v in probs.items()}}), output)
        seconds = time.perf_counter() - t0
    finally:
        torch.set_num_threads(before)
    return {"sentences": len(texts), "seconds": seconds, "startup_s": ready - t0, "labels": labels}


def compare_outputs(a: str | Path, b: str | Path) -> tuple[bool, int]:
    """Whether two outputs of :func:`predict_file` hold identical predictions, matched by ``id``
    (label, reason and every probability bit for bit); and the rows compared."""
    ta = pq.read_table(a).sort_by("id")
    tb = pq.read_table(b).sort_by("id")
    if ta.num_rows != tb.num_rows or ta.column_names != tb.column_names:
        return False, min(ta.num_rows, tb.num_rows)
    same = all(ta.column(c).equals(tb.column(c)) for c in ta.column_names if c != "model")
    return same, ta.num_rows


def _median_run(rows: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    # Median over rounds of each timed figure; None when a figure was never measured.
    def med(key: str) -> float | None:
        vals = [r[key] for r in rows if r.get(key) is not None]
        return float(statistics.median(vals)) if vals else None

    sentences = int(rows[0]["rows"])
    per_s = med("rows_per_s") or 0.0
    return {**fields, "sentences": sentences, "seconds": med("seconds"), "sentences_per_s": per_s,
            "steady_sentences_per_s": med("steady_rows_per_s"), "startup_s": med("startup_s"),
            "ray_init_s": med("ray_init_s"), "per_core_per_s": per_s / fields["cores"], "rounds": len(rows)}


def batch_scoring_benchmark(run: str | Path, corpus: str | Path, teacher_corpus: str | Path, work_dir: str | Path,
                            *, rounds: int, teacher_precision: Precision, peer_batch_sizes: Sequence[int],
                            corpus_label: str, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time batch scoring file to file and return the ``batch_scoring`` section (a dict for
    :class:`kdutils.study.summary.BatchScoringSection`).

    ``corpus``: Parquet sentences (column ``text``) the students score; ``teacher_corpus``: its first
    sentences, scored by the teacher (eager in ``teacher_precision``, and ONNX) and by
    :func:`pipeline_peer` at each of ``peer_batch_sizes`` (its best is the peer's figure). Students:
    ONNX fp32 on the local engine with 1 and 2 workers and on Ray with 2 actors (``ray.init``
    reported apart, as ``ray_init_s``), ONNX int8 on 2 local workers. Each group runs ``rounds``
    interleaved rounds; each configuration's figures are medians over them. Outputs go to
    ``work_dir``. Raises :class:`kdutils.inference.batch_io.PredictInputError` when a model is missing
    (run notebook 05 for the ONNX exports).
    """
    run, work = Path(run), Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    cores = cpu_count()
    two = min(2, cores)
    say = progress or (lambda _msg: None)
    student_cfgs = [
        (STUDENT, {"name": "student_onnx_local_1", "engine": "local", "workers": 1}, cores),
        (STUDENT, {"name": f"student_onnx_local_{two}", "engine": "local", "workers": two}, two * max(1, cores // two)),
        # Ray actors run one thread each.
        (STUDENT, {"name": "student_onnx_ray_2", "engine": "ray", "workers": 2}, 2),
        (STUDENT_INT8, {"name": f"student_int8_local_{two}", "engine": "local", "workers": two},
         two * max(1, cores // two)),
    ]
    teacher_cfgs = [
        (TEACHER, {"name": f"teacher_local_{two}", "engine": "local", "workers": two}, two * max(1, cores // two)),
        (TEACHER_ONNX, {"name": f"teacher_onnx_local_{two}", "engine": "local", "workers": two},
         two * max(1, cores // two)),
    ]
    teacher_entry = find_entry(run, TEACHER)
    timings: dict[str, list[dict[str, Any]]] = {}
    peer_labels: dict[int, list[str]] = {}
    with OtherLoad() as other:
        matmul = matmul_peak_gflops(1)
        for r in range(rounds):
            # Rotate the order between rounds: no configuration always runs first or last.
            order = student_cfgs[r % len(student_cfgs):] + student_cfgs[:r % len(student_cfgs)]
            for model, cfg, _ in order:
                say(f"round {r + 1}/{rounds}: {cfg['name']}")
                row = bench_batch_predict(run, corpus, work, [cfg], model=model)[0]
                timings.setdefault(cfg["name"], []).append(row)
            for model, cfg, _ in teacher_cfgs:
                say(f"round {r + 1}/{rounds}: {cfg['name']} ({teacher_precision})")
                row = bench_batch_predict(run, teacher_corpus, work, [{**cfg, "teacher_precision": teacher_precision}],
                                          model=model)[0]
                timings.setdefault(cfg["name"], []).append(row)
            for b in peer_batch_sizes:
                say(f"round {r + 1}/{rounds}: transformers pipeline, batch_size={b}")
                res = pipeline_peer(teacher_entry.source_dir, teacher_corpus, work / f"peer_b{b}.parquet",
                                    threads=cores, batch_size=b, max_length=teacher_entry.max_length)
                peer_labels[b] = res.pop("labels")
                timings.setdefault(f"peer_b{b}", []).append(
                    {"rows": res["sentences"], "seconds": res["seconds"], "rows_per_s": res["sentences"] / res["seconds"],
                     "startup_s": res["startup_s"],
                     "steady_rows_per_s": res["sentences"] / max(res["seconds"] - res["startup_s"], 1e-9)})

    # FLOPs of the student at the corpus's mean length in its own tokens (padding left out).
    student_entry = find_entry(run, STUDENT)
    texts = pq.read_table(corpus, columns=["text"]).column("text").to_pylist()
    mean_tokens = float(np.mean(make_predictor(student_entry, 1).encoder.lengths(texts)))
    flops = flops_per_sentence(student_entry, mean_tokens)

    runs = []
    for model, cfg, used in (*student_cfgs, *teacher_cfgs):
        row = _median_run(timings[cfg["name"]], name=cfg["name"], model=model, engine=cfg["engine"],
                          workers=cfg["workers"], cores=used, batch_size=BATCH_SIZE)
        if model == STUDENT or model == STUDENT_INT8:
            row["gflops_per_core"] = row["per_core_per_s"] * flops / 1e9
        runs.append(row)
    for b in peer_batch_sizes:
        runs.append(_median_run(timings[f"peer_b{b}"], name=f"peer_b{b}", model=TEACHER, engine=PEER, workers=1,
                                cores=cores, batch_size=b))
    by_name = {r["name"]: r for r in runs}
    student, teacher = by_name[f"student_onnx_local_{two}"], by_name[f"teacher_local_{two}"]
    best_peer = max((r for r in runs if r["engine"] == PEER), key=lambda r: r["sentences_per_s"])
    ray, local = by_name["student_onnx_ray_2"], by_name[f"student_onnx_local_{two}"]
    identical, compared = compare_outputs(work / f"student_onnx_local_{two}.parquet", work / "student_onnx_ray_2.parquet")
    ours = pq.read_table(work / f"teacher_local_{two}.parquet", columns=["label"]).column("label").to_pylist()
    best_b = best_peer["batch_size"]
    agreement = float(np.mean([a == b for a, b in zip(ours, peer_labels[best_b], strict=True)]))
    return {
        "corpus": corpus_label, "corpus_sentences": len(texts), "teacher_sentences": teacher["sentences"],
        "mean_student_tokens": mean_tokens, "flops_per_sentence": flops, "matmul_1core_gflops": matmul["peak"],
        "floor_per_core_per_s": matmul["peak"] * 1e9 / flops, "teacher_precision": teacher_precision, "runs": runs,
        "student_teacher_ratio": student["per_core_per_s"] / teacher["per_core_per_s"],
        "ours_over_peer": teacher["sentences_per_s"] / best_peer["sentences_per_s"],
        "ray_over_local": (ray["steady_sentences_per_s"] or 0.0) / (local["steady_sentences_per_s"] or float("inf")),
        "engines_identical": identical, "compared_rows": compared, "peer_agreement": agreement,
        "cpu": cpu_name(), "cores": cores, "other_processes_cpu_share": other.share,
    }


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def evaluate_targets(section: dict[str, Any]) -> list[dict[str, Any]]:
    """The batch-scoring targets (``targets.batch_scoring``) judged on a :func:`batch_scoring_benchmark`
    section: one row each (``target``, ``met``, ``measured``, ``value``, ``unit``)."""
    runs = {r["name"]: r for r in section["runs"]}
    student = runs[f"student_onnx_local_{min(2, section['cores'])}"]
    peer = max((r for r in section["runs"] if r["engine"] == PEER), key=lambda r: r["sentences_per_s"])
    teacher = runs[f"teacher_local_{min(2, section['cores'])}"]
    share = student["gflops_per_core"] / section["matmul_1core_gflops"]
    return [
        {"target": f"ONNX student file to file >= {TARGET_FLOOR_SHARE:.0%} of its FLOP floor", "met": share >= TARGET_FLOOR_SHARE,
         "measured": (f"{student['per_core_per_s']:,.0f} sentences/s per core = {student['gflops_per_core']:.1f} GFLOP/s, "
                      f"{share:.0%} of {section['matmul_1core_gflops']:.0f} GFLOP/s "
                      f"({section['flops_per_sentence'] / 1e6:.1f} MFLOP/sentence)"),
         "value": share, "unit": "share"},
        {"target": f"our command running the teacher >= {TARGET_OVER_PEER:g}x the transformers pipeline",
         "met": section["ours_over_peer"] >= TARGET_OVER_PEER,
         "measured": (f"{teacher['sentences_per_s']:,.1f} against {peer['sentences_per_s']:,.1f} sentences/s "
                      f"(batch_size={peer['batch_size']}), whole jobs: {section['ours_over_peer']:.2f}x; steady "
                      f"{_rate(teacher['steady_sentences_per_s'])} against {_rate(peer['steady_sentences_per_s'])}"),
         "value": section["ours_over_peer"], "unit": "x"},
        {"target": f"Ray 2 actors >= {TARGET_RAY_OVER_LOCAL:g}x local 2 workers (start-up excluded)",
         "met": section["ray_over_local"] >= TARGET_RAY_OVER_LOCAL,
         "measured": (f"{section['ray_over_local']:.2f}x: {_rate(runs['student_onnx_ray_2']['steady_sentences_per_s'])} "
                      f"against {_rate(student['steady_sentences_per_s'])} sentences/s"),
         "value": section["ray_over_local"], "unit": "x"},
        {"target": "local and Ray engines give identical predictions", "met": bool(section["engines_identical"]),
         "measured": f"{'identical' if section['engines_identical'] else 'different'} over {section['compared_rows']:,} rows",
         "value": section["compared_rows"], "unit": "rows"},
    ]
