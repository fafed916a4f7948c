"""The paper's context: everything the template may say, computed once here.

:func:`build_context` joins one small builder per part of the paper (front matter, data,
teacher, students, distillation, deployment, published work) and the helpers the template
calls to place tables, figures and citations. The summary is the validated
:class:`~kdutils.study.summary.Summary` after :func:`~kdutils.report.results.guard_intervals`; the
manifest stays a dict (it has no contract of its own), so only its reads are guarded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kdutils import plots
from kdutils.report import anchors
from kdutils.report.figures import FIGURE_SECTIONS, PaperFigures
from kdutils.report.formatting import RUNTIME_LABELS, is_num
from kdutils.report.reading import ReportError, RunFiles
from kdutils.report.results import (
    SIGNIFICANCE_LEVEL,
    Bench,
    TeacherComparison,
    depth_rows,
    gain_seeds,
    gap_closed,
    inference_rows,
    latency_ratio,
    served_p50_ms,
    serving_rows,
    significance_caveat,
    teacher_key,
    teacher_label,
)
from kdutils.report.tables import STUDENT_ORDER, Table, depth_table_name, targets_table_name
from kdutils.stats import MIN_SEEDS_FOR_INTERVAL
from kdutils.study.specs import DATASETS, LOSSES, TEACHERS
from kdutils.study.summary import (
    AblationRow,
    DistillationSection,
    FaultTest,
    FaultTestSkipped,
    HttpOverhead,
    Peers,
    Summary,
)

# Replicas must beat one replica's throughput by this factor before the paper calls it a speed-up.
BALANCER_GAIN = 1.2


# How the prose names the teacher's numeric mode (kdutils.machine).
PRECISION_LABELS = {"fp32": "fp32", "bf16": "bf16 autocast (fp32 master weights, bf16 matrix products)"}

# How the prose names a student (tables use plots.model_label).
STUDENT_PHRASES = {"student_distilled": "distilled BiLSTM", "student_baseline": "label-trained BiLSTM",
                   "student_original": "BiLSTM at the original sizes"}


def paper_title(summary: Summary, manifest: dict[str, Any]) -> str:
    """The paper's title: the teacher (from the parameters) and the data set (from ``data``)."""
    teacher = teacher_label(manifest, "a transformer")
    spec = DATASETS.get(summary.data.dataset) if summary.data else None
    dataset = spec.label if spec else "sentiment data"
    return f"Distilling {teacher} into a BiLSTM for sentiment on {dataset}: a reproducible study"


# ---- the gain and how it was tested


def gain_summary(summary: Summary) -> dict[str, Any] | None:
    """What the paper and the index say about the gain: the numbers, the verdict and its caveat.

    ``gain`` and ``ci`` are in points, ``p`` is the one-sided paired p-value; ``verdict`` and
    ``caveat`` are the words every "significant" sentence uses. ``None`` before notebook 04.
    """
    dist = summary.distillation
    if dist is None:
        return None
    ci, p, gain = dist.gain_ci95, dist.p_value, dist.gain_points_mean
    n_seeds = gain_seeds(dist)
    significant = p < SIGNIFICANCE_LEVEL
    test_text = dist.p_value_test
    return {
        "gain": gain,
        "ci": ci,
        "p": p,
        "significant": significant,
        "n_seeds": n_seeds,
        # Every sentence that says "significant" says it with these words (paper and index).
        "verdict": f"{'significant' if significant else 'not significant'} at the {SIGNIFICANCE_LEVEL} level",
        "caveat": significance_caveat(significant, ci, n_seeds),
        "ci_excludes_zero": bool(ci) and (ci[0] > 0 or ci[1] < 0),
        "positive": gain > 0,
        "ablation": _ablation_context(dist.ablation),
        "test_text": test_text,
        # "paired bootstrap over the 853 test sentences (2000 resamples), ..." -> the part before "(".
        "test_name": test_text.split(" (")[0].split(",")[0].strip() or None,
        "test_sides": next((w for w in ("one-sided", "two-sided") if w in test_text), None),
        "boot_ci": dist.bootstrap_gain_ci95_points,
        "mcnemar": _mcnemar_context(dist),
    }


def _ablation_context(rows: list[AblationRow]) -> dict[str, Any] | None:
    """How many settings were tried, and the best and weakest by test accuracy."""
    if not rows:
        return None
    best = max(rows, key=lambda r: r.accuracy_mean)
    worst = min(rows, key=lambda r: r.accuracy_mean)
    return {"n": len(rows), "best": {"label": best.setting, "accuracy": best.accuracy_mean},
            "worst": {"label": worst.setting, "accuracy": worst.accuracy_mean}}


def _mcnemar_context(dist: DistillationSection) -> dict[str, Any] | None:
    """Per-seed exact McNemar tests: how many seeds show a significant difference."""
    if not dist.mcnemar:
        return None
    return {"n": len(dist.mcnemar), "significant": sum(r.p_value < SIGNIFICANCE_LEVEL for r in dist.mcnemar),
            "test": dist.mcnemar_test}


# ---- one builder per part of the paper


def _front_matter(summary: Summary, manifest: dict[str, Any], profile: str) -> dict[str, Any]:
    params = manifest.get("parameters") or {}
    packages = manifest.get("packages") or {}
    return {
        "title": paper_title(summary, manifest),
        "profile": profile,
        "description": params.get("description") or "",
        "manifest": manifest,
        "params": params,
        "git": manifest.get("git") or {},
        "machine": {"cpu": manifest.get("cpu"), "cores": manifest.get("cores"), "python": manifest.get("python"),
                    "torch": packages.get("torch"), "transformers": packages.get("transformers")},
    }


def _data_part(summary: Summary, params: dict[str, Any]) -> dict[str, Any]:
    data = summary.data
    return {
        "data": data,
        "dataset": DATASETS.get(data.dataset) if data else None,
        "subsampled": any((params.get("data") or {}).get(k) for k in ("max_train", "max_val", "max_test")),
    }


def _depth_context(summary: Summary) -> dict[str, Any] | None:
    """The depth sweep as the text describes it: monotone or not, best, shallowest, full."""
    rows = depth_rows(summary)
    if len(rows) < 2:
        return None
    accs = [r.entry.accuracy for r in rows]
    shallow, full = rows[0], rows[-1]
    return {
        "rows": rows,
        "monotone": all(b >= a for a, b in zip(accs, accs[1:], strict=False)),
        "best": max(rows, key=lambda r: r.entry.accuracy),
        "shallowest": shallow,
        "full": full,
        "drop_points": 100 * (full.entry.accuracy - shallow.entry.accuracy),
    }


def teacher_mode(summary: Summary, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The numeric mode a run's teacher was fine-tuned and scored in, as the paper states it.

    ``{"mode": "fp32" | "bf16", "label": words for it, "reason": why (from the manifest's
    ``teacher_precision``, None where not recorded)}``; None when the run trained no teacher.
    """
    teacher = summary.models.teacher if summary.models else None
    if teacher is None:
        return None
    recorded = manifest.get("teacher_precision") or {}
    reason = recorded.get("reason") if recorded.get("mode") == teacher.precision else None
    return {"mode": teacher.precision, "label": PRECISION_LABELS[teacher.precision], "reason": reason}


def _teacher_part(summary: Summary, manifest: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    key = teacher_key(manifest)
    return {
        "teacher_mode": teacher_mode(summary, manifest),
        "teacher": summary.models.teacher if summary.models else None,
        "teacher_key": key,
        "teacher_info": TEACHERS.get(key) if key else None,
        "depth": _depth_context(summary),
        "depths": [r for r in depth_rows(summary) if r.name != "teacher"],
        "teacher_params": params.get("teacher") or {},
    }


def _students_part(summary: Summary, params: dict[str, Any]) -> dict[str, Any]:
    models, dist = summary.models, summary.distillation
    students = {n: m for n in STUDENT_ORDER if models and (m := getattr(models, n)) is not None}
    baseline, distilled = students.get("student_baseline"), students.get("student_distilled")
    trained = baseline if baseline is not None else distilled
    n_seeds = trained.n_seeds if trained is not None else len(dist.seeds) if dist is not None else None
    return {
        "students": students,
        "baseline": baseline,
        "distilled": distilled,
        "original_student": students.get("student_original"),
        "tfidf": students.get("tfidf_logreg"),
        "n_seeds": n_seeds,
        "student_params": params.get("student") or {},
        "student_run": summary.student,
    }


def _distillation_part(summary: Summary, params: dict[str, Any]) -> dict[str, Any]:
    models, dist = summary.models, summary.distillation
    distill_params = params.get("distill") or {}
    # What the distillation notebook recorded wins over the profile's parameters.
    if dist is not None:
        aug = {"n_iter": dist.n_iter, "p_mask": dist.p_mask, "p_replace": dist.p_replace, "p_ngram": dist.p_ngram,
               "unlabelled": dist.unlabelled, "unlabelled_source": dist.unlabelled_source,
               "counts": dist.transfer_set.model_dump()}
    else:
        aug = {k: distill_params.get(k) for k in ("n_iter", "p_mask", "p_replace", "p_ngram", "unlabelled")}
        aug.update(unlabelled_source=None, counts=None)
    n_iter = aug["n_iter"]
    gain = gain_summary(summary)
    teacher, baseline, distilled = ((models.teacher, models.student_baseline, models.student_distilled)
                                    if models else (None, None, None))
    gap = None
    if teacher and baseline and distilled and gain:
        gap = {"teacher_minus_baseline": 100 * (teacher.accuracy - baseline.accuracy_mean),
               "closed_share": gap_closed(teacher.accuracy, baseline.accuracy_mean, distilled.accuracy_mean),
               "teacher_minus_distilled": 100 * (teacher.accuracy - distilled.accuracy_mean)}
    return {
        "distillation": dist,
        "gain": gain,
        "gap": gap,
        "augmented": bool(n_iter) if is_num(n_iter) else None,
        "aug": aug,
        "distill_params": distill_params,
        "losses": LOSSES,
    }


def _speed_context(summary: Summary) -> dict[str, Any] | None:
    """Teacher vs student latency in eager PyTorch, and what ONNX Runtime changes."""
    by: dict[tuple[str, str], Bench] = {(b.model, b.runtime): b for b in inference_rows(summary)}
    student_name = next((n for n in ("student_distilled", "student_baseline") if (n, "torch") in by), None)
    ratio = latency_ratio(summary, student_name) if student_name else None
    if ratio is None:
        return None
    teacher, student = by[("teacher", "torch")].row, by[(student_name, "torch")].row
    out: dict[str, Any] = {
        "student_name": student_name,
        "teacher_ms": teacher.latency_ms_p50, "student_ms": student.latency_ms_p50,
        "ratio": ratio,
        "teacher_tp": teacher.throughput_per_s,
        "student_tp": student.throughput_per_s,
        "runtimes": {},
    }
    for rt in ("onnx", "onnx-int8"):
        bench = by.get(("teacher", rt))
        if bench and bench.row.latency_ms_p50 > 0:
            out["runtimes"][rt] = {
                "label": RUNTIME_LABELS[rt], "teacher_ms": bench.row.latency_ms_p50,
                "speedup": teacher.latency_ms_p50 / bench.row.latency_ms_p50,
                "agreement": bench.row.agreement_with_eager, "size_mb": bench.row.size_mb,
                "eager_size_mb": teacher.size_mb,
            }
    return out


def _peers_context(peers: Peers, overhead: HttpOverhead) -> dict[str, Any] | None:
    """Ratios the paper states about serving.peers; ``None`` without a latency at the lowest load."""
    cs = sorted(peers.ours, key=int)
    if not cs:
        return None
    low, high = cs[0], cs[-1]
    f, n, o = peers.floor[low], peers.naive[low], peers.ours[low]
    if f.p50_ms is None or n.p50_ms is None or o.p50_ms is None:
        return None
    runtime = overhead.runtimes.get(peers.model)
    in_process = runtime.in_process_p50_ms if runtime else None
    ours, naive = peers.ours[high], peers.naive[high]
    return {"model": peers.model, "low": int(low), "high": int(high), "floor_ms": f.p50_ms,
            "naive_ms": n.p50_ms, "ours_ms": o.p50_ms, "in_process_ms": in_process,
            "http_ms": o.p50_ms - in_process if in_process is not None else None,
            "p50_vs_naive": o.p50_ms / n.p50_ms,
            "rps_vs_naive": ours.rps / naive.rps if naive.rps else None,
            "ours_rps": ours.rps, "naive_rps": naive.rps}


def _serving_context(summary: Summary) -> dict[str, Any] | None:
    """Replicas behind nginx vs one replica at the highest shared concurrency; the fault test."""
    serving = summary.serving
    if serving is None:
        return None
    rows = serving_rows(summary)
    out: dict[str, Any] = {"balancer": [], "fault": None, "fault_skipped": None, "overhead": None, "micro": None,
                           "errors": sum(r.stats.errors for r in rows),
                           "setups": sorted({r.setup for r in rows})}
    index = {(r.setup, r.model, r.concurrency): r.stats for r in rows}
    for model in dict.fromkeys(r.model for r in rows):
        shared = sorted(c for (s, m, c) in index if s == "1_replica" and m == model
                        and ("N_replicas_nginx", m, c) in index)
        if not shared:
            continue
        one, many = index[("1_replica", model, shared[-1])], index[("N_replicas_nginx", model, shared[-1])]
        if one.rps > 0:
            out["balancer"].append({"model": model, "label": plots.model_label(model),
                                    "concurrency": shared[-1], "one_rps": one.rps, "many_rps": many.rps,
                                    "ratio": many.rps / one.rps})
    if isinstance(serving.fault_test, FaultTest):
        out["fault"] = serving.fault_test
    elif isinstance(serving.fault_test, FaultTestSkipped):
        out["fault_skipped"] = serving.fault_test.skipped
    oh = serving.http_overhead
    if oh.noop.p50_ms is not None and oh.predict.p50_ms is not None:
        out["overhead"] = {"noop_ms": oh.noop.p50_ms, "predict_ms": oh.predict.p50_ms, "model": oh.model,
                           "in_process_ms": oh.in_process_p50_ms, "method": oh.method, "floor_ms": oh.floor.p50_ms}
    out["peers"] = _peers_context(serving.peers, oh)
    mb = serving.micro_batching
    out["micro"] = {"window_ms": mb.micro_batching_ms, "users": mb.users, "model": mb.model,
                    "off_rps": mb.off.rps, "on_rps": mb.on.rps, "off_p95": mb.off.p95_ms, "on_p95": mb.on.p95_ms}
    out["settings"] = serving.settings
    return out


def _batch_context(summary: Summary) -> dict[str, Any] | None:
    """What the paper says about batch scoring (notebook 06); ``None`` for a run without it."""
    section = summary.batch_scoring
    if section is None:
        return None
    runs = {r.name: r for r in section.runs}
    two = min(2, section.cores)
    peers = [r for r in section.runs if r.engine == "transformers-pipeline"]
    return {
        "section": section, "student": runs[f"student_onnx_local_{two}"], "int8": runs.get(f"student_int8_local_{two}"),
        "teacher": runs[f"teacher_local_{two}"], "teacher_onnx": runs.get(f"teacher_onnx_local_{two}"),
        "ray": runs["student_onnx_ray_2"], "peer": max(peers, key=lambda r: r.sentences_per_s),
        "floor_share": (runs[f"student_onnx_local_{two}"].gflops_per_core or 0.0) / section.matmul_1core_gflops,
    }


def _deployment_part(summary: Summary, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "inference": summary.inference,
        "serving": summary.serving,
        "speed": _speed_context(summary),
        "serve": _serving_context(summary),
        "bench_machine": summary.inference.machine if summary.inference else None,
        "deploy_params": params.get("deploy") or {},
        "balancer_gain": BALANCER_GAIN,
        "batch": _batch_context(summary),
    }


def _published_context(gain: dict[str, Any] | None, augmented: bool | None) -> dict[str, Any]:
    """Published gains the text compares with, and where this run's gain falls among them."""
    with_aug = anchors.published_gains(augmented=True)
    without_aug = anchors.published_gains(augmented=False)
    original = next(r for r in anchors.DISTILLATION_RESULTS if r.ref == "original")
    comparable = with_aug if augmented else without_aug
    out: dict[str, Any] = {
        "with_aug": {"min": min(with_aug), "max": max(with_aug)} if with_aug else None,
        "without_aug": {"min": min(without_aug), "max": max(without_aug)} if without_aug else None,
        "original": original,
        "tang": next(r for r in anchors.DISTILLATION_RESULTS if r.ref == "tang2019"),
        "small_transformers": anchors.SMALL_TRANSFORMERS,
        "results": [r for r in anchors.DISTILLATION_RESULTS if r.ref != "original"],
        "small_refs": list(dict.fromkeys(r.ref for r in anchors.SMALL_TRANSFORMERS)),
        "cpu": {f.ref: f for f in anchors.CPU_INFERENCE},
        "position": None,
    }
    if gain and comparable:
        lo, hi = min(comparable), max(comparable)
        out["position"] = "below" if gain["gain"] < lo else "above" if gain["gain"] > hi else "within"
        out["comparable"] = {"min": lo, "max": hi}
        ci = gain["ci"]
        out["original_in_ci"] = bool(ci) and ci[0] <= original.gain_points <= ci[1]
    return out


# Parameters two runs must share for their comparison to be one of the teacher alone.
SHARED_PARAMETERS = ("data", "seeds", "student", "distill")


def _comparison_part(rows: Sequence[TeacherComparison], others: Sequence[RunFiles],
                     params: dict[str, Any]) -> dict[str, Any]:
    """The section that sets other runs' teachers beside the main one (``None`` with one run).

    ``rows`` are :func:`~kdutils.report.results.teacher_comparison`'s, the main run first, as the
    comparison table and figure show them; for each other run, what the text says of its
    teacher, which of :data:`SHARED_PARAMETERS` differ from the main run's ``params``, and how
    far its teacher and distilled student are from the main run's (points).
    """
    if len(rows) < 2:
        return {"comparison": None}
    main = rows[0]
    by_profile = {c.profile: c for c in rows}
    described = []
    for run in others:
        row = by_profile.get(run.profile)
        if row is None:
            continue
        depths = depth_rows(run.summary)
        described.append({
            "profile": run.profile, "row": row, "label": row.teacher_label,
            "info": TEACHERS.get(row.teacher) if row.teacher else None,
            "depths": [d.layers for d in depths if d.name != "teacher"],
            "depth_table": depth_table_name(run.profile),
            "differs": [k for k in SHARED_PARAMETERS
                        if (run.manifest.get("parameters") or {}).get(k) != params.get(k)],
            "served": served_p50_ms(run.summary, "teacher") is not None,
            "mode": teacher_mode(run.summary, run.manifest),
            "teacher_points": 100 * (row.teacher_accuracy - main.teacher_accuracy),
            "distilled_points": 100 * (row.distilled_accuracy - main.distilled_accuracy),
        })
    heading = f"A second teacher: {described[0]['label']}" if len(described) == 1 else "Other teachers"
    return {"comparison": {"main": main, "rows": list(rows), "others": described, "heading": heading}}


def _targets_part(runs: Sequence[tuple[str, Summary]]) -> dict[str, Any]:
    """Each run's targets (``runs``: ``(profile, summary)``, the main run first; runs without any are
    left out): its table's name, and the targets met, missed (with the measured figures) and not
    measured."""
    out = []
    for run_profile, run_summary in runs:
        rows = [row for _, row in run_summary.targets.rows()] if run_summary.targets else []
        if rows:
            out.append({"profile": run_profile, "table": targets_table_name(run_profile), "total": len(rows),
                        "met": sum(r.met is True for r in rows),
                        "missed": [r for r in rows if r.met is False],
                        "unmeasured": [r for r in rows if r.met is None]})
    return {"targets": out}


# ---- placing tables, figures and citations


def _placement(tables: dict[str, Table], figures: PaperFigures) -> dict[str, Callable[..., Any]]:
    """The functions the template calls to insert or refer to a table, a figure or a reference."""
    table_numbers = {name: i + 1 for i, name in enumerate(tables)}
    refs_used: list[str] = []

    def cite(*refs: str) -> str:
        """An author-year citation; also collects the reference list in order of first use."""
        parts = []
        for r in refs:
            if r not in anchors.REFERENCES:
                raise ReportError(f"template cites unknown reference {r!r}")
            if r not in refs_used:
                refs_used.append(r)
            parts.append(f"[{refs_used.index(r) + 1}]")
        return "".join(parts)

    def table(name: str) -> str:
        t = tables.get(name)
        if t is None:
            return f"\n*Table {name.replace('_', ' ')}: not run in this profile.*\n"
        return f"\n**Table {table_numbers[name]}.** {t.caption}\n\n{t.markdown()}\n"

    def table_ref(name: str) -> str:
        return f"Table {table_numbers[name]}" if name in tables else f"the {name.replace('_', ' ')} table (not run)"

    def figure(name: str) -> str:
        f = figures.available.get(name)
        if f is None:
            spec = next(s for s in figures.missing if s.name == name)
            return (f"\n*Figure “{name}” (notebook {spec.notebook}) was not produced by this run and is "
                    f"left out.*\n")
        return f"\n![{f.caption}]({f.path})\n\n**Figure {f.number}.** {f.caption}\n"

    def figures_of(section: str) -> str:
        """The section's figures that exist, then one note naming those this run did not produce."""
        shown = [figure(n) for n in FIGURE_SECTIONS[section] if n in figures.available]
        absent = [s for s in figures.missing if s.section == section]
        if absent:
            names = ", ".join(f"“{s.name}” (notebook {s.notebook})" for s in absent)
            plural = "s" if len(absent) > 1 else ""
            shown.append(f"\n*Figure{plural} not produced by this run and left out: {names}.*\n")
        return "\n".join(shown)

    def fig_ref(name: str) -> str:
        f = figures.available.get(name)
        return f"Figure {f.number}" if f else ""

    return {"cite": cite, "references": lambda: [anchors.REFERENCES[r] for r in refs_used], "table": table,
            "table_ref": table_ref, "figure": figure, "figures_of": figures_of, "fig_ref": fig_ref}


def build_context(
    summary: Summary,
    manifest: dict[str, Any],
    tables: dict[str, Table],
    figures: PaperFigures,
    profile: str,
    comparison: Sequence[TeacherComparison] = (),
    others: Sequence[RunFiles] = (),
    target_runs: Sequence[tuple[str, Summary]] | None = None,
) -> dict[str, Any]:
    """Everything ``templates/paper.md.j2`` may use, for one run's paper.

    ``summary`` is the run's validated summary after
    :func:`~kdutils.report.results.guard_intervals`; ``tables`` are :func:`build_tables`'s (their
    order numbers them); ``figures`` are the figures found for the paper. ``comparison`` (this
    run's row first) and ``others`` (the runs of the other rows, summaries guarded) add the
    section that sets the teachers side by side; with fewer than two rows there is none.
    ``target_runs`` (``(profile, summary)``, this run first; default: this run alone) are the runs
    whose targets the paper states, each with its table from
    :func:`~kdutils.report.tables.targets_table`. Raises :class:`ReportError` if the template
    cites a reference :mod:`anchors` does not know.
    """
    params = manifest.get("parameters") or {}
    distillation = _distillation_part(summary, params)
    return {
        **_front_matter(summary, manifest, profile),
        **_data_part(summary, params),
        **_teacher_part(summary, manifest, params),
        **_students_part(summary, params),
        **distillation,
        **_deployment_part(summary, params),
        **_comparison_part(comparison, others, params),
        **_targets_part(target_runs if target_runs is not None else [(profile, summary)]),
        "published": _published_context(distillation["gain"], distillation["augmented"]),
        "alpha_level": SIGNIFICANCE_LEVEL,
        "min_seeds": MIN_SEEDS_FOR_INTERVAL,
        "tables": tables,
        "figures": figures,
        **_placement(tables, figures),
        "model_label": plots.model_label,
        "student_phrase": lambda name: STUDENT_PHRASES.get(name, plots.model_label(name)),
    }
