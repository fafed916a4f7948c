"""The paper's context: everything the template may say, computed once here."""

from __future__ import annotations

from typing import Any

from kdutils import plots
from kdutils.report import anchors
from kdutils.report.facts import DATASET_INFO, TEACHER_INFO
from kdutils.report.figures import FIGURE_SECTIONS, PaperFigures
from kdutils.report.formatting import RUNTIME_LABELS, is_num
from kdutils.report.reading import ReportError
from kdutils.report.results import (
    SIGNIFICANCE_LEVEL,
    depth_rows,
    inference_rows,
    models_of,
    n_of,
    records,
    serving_rows,
    significance_caveat,
    teacher_key,
    throughput_key,
)
from kdutils.report.tables import STUDENT_ORDER, Table
from kdutils.stats import MIN_SEEDS_FOR_INTERVAL

# Replicas must beat one replica's throughput by this factor before the paper calls it a speed-up.
BALANCER_GAIN = 1.2


# How the prose names a student (tables use plots.model_label).
STUDENT_PHRASES = {"student_distilled": "distilled BiLSTM", "student_baseline": "label-trained BiLSTM",
                   "student_original": "BiLSTM at the original sizes"}


def gain_summary(summary: dict[str, Any]) -> dict[str, Any] | None:
    dist = summary.get("distillation")
    if not isinstance(dist, dict) or not is_num(dist.get("gain_points_mean")):
        return None
    ci = dist.get("gain_ci95") if isinstance(dist.get("gain_ci95"), list | tuple) else None
    p = dist.get("p_value")
    gain = float(dist["gain_points_mean"])
    n_seeds = n_of(dist, "gain_points_per_seed", "seeds")
    significant = is_num(p) and p < SIGNIFICANCE_LEVEL
    return {
        **dist,
        "gain": gain,
        "ci": ci,
        "p": p,
        "has_p": is_num(p),
        "significant": significant,
        "n_seeds": n_seeds,
        # Every sentence that says "significant" says it with these words (paper and index).
        "verdict": f"{'significant' if significant else 'not significant'} at the {SIGNIFICANCE_LEVEL} level",
        "caveat": significance_caveat(significant, ci, n_seeds),
        "ci_excludes_zero": bool(ci) and (ci[0] > 0 or ci[1] < 0),
        "positive": gain > 0,
        "ablation": _ablation_context(records(dist.get("ablation"))),
        "test_text": _test_text(dist),
        # "paired bootstrap over the 853 test sentences (2000 resamples), ..." -> the part before "(".
        "test_name": (_test_text(dist) or "").split(" (")[0].split(",")[0].strip() or None,
        "test_sides": next((w for w in ("one-sided", "two-sided") if w in (_test_text(dist) or "")), None),
        "boot_ci": dist.get("bootstrap_gain_ci95_points") if isinstance(dist.get("bootstrap_gain_ci95_points"),
                                                                        list | tuple) else None,
        "mcnemar": _mcnemar_context(dist),
        "paired_seeds": isinstance(dist.get("gain_points_per_seed"), list),
    }


_ROW_LABEL_KEYS = ("setting", "variant", "name", "config", "label", "ablation", "model")
_ROW_ACC_KEYS = ("accuracy_mean", "accuracy", "val_accuracy_mean", "val_accuracy")


def _ablation_context(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best ablation row by test accuracy, when the rows carry a label and an accuracy."""
    if not rows:
        return None
    label_key = next((k for k in _ROW_LABEL_KEYS if all(isinstance(r.get(k), str) for r in rows)), None)
    acc_key = next((k for k in _ROW_ACC_KEYS if all(is_num(r.get(k)) for r in rows)), None)
    out: dict[str, Any] = {"n": len(rows), "best": None}
    if label_key and acc_key:
        best = max(rows, key=lambda r: r[acc_key])
        worst = min(rows, key=lambda r: r[acc_key])
        out.update(best={"label": best[label_key], "accuracy": best[acc_key]},
                   worst={"label": worst[label_key], "accuracy": worst[acc_key]})
    return out


def _test_text(dist: dict[str, Any]) -> str | None:
    """How the run computed its p-value, in words, from what the distillation section records."""
    parts = [str(dist[k]) for k in ("p_value_test", "test", "method") if isinstance(dist.get(k), str)]
    return parts[0] if parts else None


def _mcnemar_context(dist: dict[str, Any]) -> dict[str, Any] | None:
    """Per-seed exact McNemar tests: how many seeds show a significant difference."""
    rows = [r for r in dist.get("mcnemar") or [] if isinstance(r, dict) and is_num(r.get("p_value"))]
    if not rows:
        return None
    return {"n": len(rows), "significant": sum(r["p_value"] < SIGNIFICANCE_LEVEL for r in rows),
            "test": dist.get("mcnemar_test") if isinstance(dist.get("mcnemar_test"), str) else None}


def _published_context(gain: dict[str, Any] | None, augmented: bool | None) -> dict[str, Any]:
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
        ci = gain.get("ci")
        out["original_in_ci"] = bool(ci) and ci[0] <= original.gain_points <= ci[1]
    return out


def _depth_context(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    scored = [r for r in rows if is_num(r.get("accuracy")) and r.get("layers") is not None]
    if len(scored) < 2:
        return None
    accs = [r["accuracy"] for r in scored]
    best = max(scored, key=lambda r: r["accuracy"])
    shallow, full = scored[0], scored[-1]
    return {
        "rows": scored,
        "monotone": all(b >= a for a, b in zip(accs, accs[1:], strict=False)),
        "best": best,
        "shallowest": shallow,
        "full": full,
        "drop_points": 100 * (full["accuracy"] - shallow["accuracy"]),
    }


def _speed_context(summary: dict[str, Any]) -> dict[str, Any] | None:
    """Teacher vs student latency in eager PyTorch, and what ONNX Runtime changes."""
    by: dict[tuple[str, str], dict[str, Any]] = {}
    for row in inference_rows(summary):
        if is_num(row.get("latency_ms_p50")):
            by[(str(row.get("model")), str(row.get("runtime", "torch")))] = row
    student_name = next((n for n in ("student_distilled", "student_baseline") if (n, "torch") in by), None)
    teacher, student = by.get(("teacher", "torch")), by.get((student_name, "torch")) if student_name else None
    if not teacher or not student or student["latency_ms_p50"] <= 0:
        return None
    out: dict[str, Any] = {
        "student_name": student_name,
        "teacher_ms": teacher["latency_ms_p50"], "student_ms": student["latency_ms_p50"],
        "ratio": teacher["latency_ms_p50"] / student["latency_ms_p50"],
        "teacher_tp": teacher.get(throughput_key(teacher) or ""),
        "student_tp": student.get(throughput_key(student) or ""),
        "runtimes": {},
    }
    for rt in ("onnx", "onnx-int8"):
        row = by.get(("teacher", rt))
        if row and row["latency_ms_p50"] > 0:
            out["runtimes"][rt] = {
                "label": RUNTIME_LABELS[rt], "teacher_ms": row["latency_ms_p50"],
                "speedup": teacher["latency_ms_p50"] / row["latency_ms_p50"],
                "agreement": row.get("agreement_with_eager"), "size_mb": row.get("size_mb"),
                "eager_size_mb": teacher.get("size_mb"),
            }
    return out


def _peers_context(peers: Any, overhead: dict[str, Any]) -> dict[str, Any] | None:
    """Ratios the paper states about serving.peers (None when the run has no peer comparison)."""
    if not isinstance(peers, dict) or not all(isinstance(peers.get(k), dict) for k in ("floor", "naive", "ours")):
        return None
    cs = sorted((c for c in peers["ours"] if str(c).isdigit() and c in peers["naive"] and c in peers["floor"]), key=int)
    if not cs:
        return None
    low, high = cs[0], cs[-1]
    f, n, o = (peers[k][low] for k in ("floor", "naive", "ours"))
    runtimes = overhead.get("runtimes") if isinstance(overhead.get("runtimes"), dict) else {}
    in_process = (runtimes.get(peers.get("model")) or {}).get("in_process_p50_ms")
    if not all(is_num(x) for x in (f.get("p50_ms"), n.get("p50_ms"), o.get("p50_ms"))):
        return None
    return {"model": peers.get("model"), "low": int(low), "high": int(high), "floor_ms": f["p50_ms"],
            "naive_ms": n["p50_ms"], "ours_ms": o["p50_ms"], "in_process_ms": in_process,
            "http_ms": o["p50_ms"] - in_process if is_num(in_process) else None,
            "p50_vs_naive": o["p50_ms"] / n["p50_ms"],
            "rps_vs_naive": peers["ours"][high]["rps"] / peers["naive"][high]["rps"]
            if is_num(peers["naive"][high].get("rps")) and peers["naive"][high]["rps"] else None,
            "ours_rps": peers["ours"][high].get("rps"), "naive_rps": peers["naive"][high].get("rps")}


def _serving_context(summary: dict[str, Any]) -> dict[str, Any] | None:
    """Replicas behind nginx vs one replica at the highest shared concurrency; the fault test."""
    rows = serving_rows(summary)
    section = summary.get("serving") if isinstance(summary.get("serving"), dict) else {}
    if not rows and not section:
        return None
    out: dict[str, Any] = {"balancer": [], "fault": None, "fault_skipped": None, "overhead": None, "micro": None,
                           "errors": sum(int(r.get("errors") or 0) for r in rows),
                           "setups": sorted({str(r.get("setup")) for r in rows if r.get("setup")})}
    index = {(r.get("setup"), r.get("model"), r.get("concurrency")): r for r in rows}
    for model in dict.fromkeys(r.get("model") for r in rows):
        shared = sorted(c for (s, m, c) in index if s == "1_replica" and m == model
                        and ("N_replicas_nginx", m, c) in index and isinstance(c, int))
        if not shared:
            continue
        one, many = index[("1_replica", model, shared[-1])], index[("N_replicas_nginx", model, shared[-1])]
        if is_num(one.get("rps")) and is_num(many.get("rps")) and one["rps"] > 0:
            out["balancer"].append({"model": model, "label": plots.model_label(str(model)),
                                    "concurrency": shared[-1], "one_rps": one["rps"], "many_rps": many["rps"],
                                    "ratio": many["rps"] / one["rps"]})
    fault = section.get("fault_test")
    if isinstance(fault, dict) and is_num(fault.get("requests")):
        out["fault"] = fault
    elif isinstance(fault, dict) and isinstance(fault.get("skipped"), str):
        out["fault_skipped"] = fault["skipped"]
    oh = section.get("http_overhead")
    if isinstance(oh, dict) and all(isinstance(oh.get(k), dict) and is_num(oh[k].get("p50_ms"))
                                    for k in ("noop", "predict")):
        out["overhead"] = {"noop_ms": oh["noop"]["p50_ms"], "predict_ms": oh["predict"]["p50_ms"],
                           "model": oh.get("model"), "in_process_ms": oh.get("in_process_p50_ms"),
                           "method": oh.get("method"),
                           "floor_ms": (oh.get("floor") or {}).get("p50_ms")}
    out["peers"] = _peers_context(section.get("peers"), oh if isinstance(oh, dict) else {})
    mb = section.get("micro_batching")
    if isinstance(mb, dict) and all(isinstance(mb.get(k), dict) and is_num(mb[k].get("rps")) for k in ("off", "on")):
        out["micro"] = {"window_ms": mb.get("micro_batching_ms"), "users": mb.get("users"), "model": mb.get("model"),
                        "off_rps": mb["off"]["rps"], "on_rps": mb["on"]["rps"],
                        "off_p95": mb["off"].get("p95_ms"), "on_p95": mb["on"].get("p95_ms")}
    settings = section.get("settings")
    out["settings"] = settings if isinstance(settings, dict) else {}
    return out


def build_context(
    summary: dict[str, Any],
    manifest: dict[str, Any],
    tables: dict[str, Table],
    figures: PaperFigures,
    profile: str,
) -> dict[str, Any]:
    models = models_of(summary)
    params = manifest.get("parameters") or {}
    key = teacher_key(summary, manifest)
    teacher = models.get("teacher") if isinstance(models.get("teacher"), dict) else None
    data = summary.get("data") if isinstance(summary.get("data"), dict) else None
    gain = gain_summary(summary)
    distill_params = params.get("distill") or {}
    # What the distillation notebook recorded wins over the profile's parameters.
    recorded = summary.get("distillation") if isinstance(summary.get("distillation"), dict) else {}
    aug = {k: recorded.get(k, distill_params.get(k)) for k in ("n_iter", "p_mask", "p_replace", "p_ngram")}
    aug["unlabelled"] = recorded.get("unlabelled", distill_params.get("unlabelled"))
    aug["unlabelled_source"] = recorded.get("unlabelled_source")
    counts = recorded.get("transfer_set")
    aug["counts"] = {k: v for k, v in counts.items() if is_num(v)} if isinstance(counts, dict) else None
    n_iter = aug["n_iter"]
    augmented = bool(n_iter) if is_num(n_iter) else None
    students = {n: models[n] for n in STUDENT_ORDER if isinstance(models.get(n), dict)}
    baseline, distilled = students.get("student_baseline"), students.get("student_distilled")
    n_seeds = next((len(m["per_seed"]) for m in (baseline, distilled)
                    if m and isinstance(m.get("per_seed"), list)), None)
    if n_seeds is None and isinstance(recorded.get("seeds"), list):
        n_seeds = len(recorded["seeds"])
    gap = None
    if teacher and baseline and distilled and gain and is_num(teacher.get("accuracy")):
        teacher_gap = 100 * (teacher["accuracy"] - baseline["accuracy_mean"])
        gap = {"teacher_minus_baseline": teacher_gap,
               "closed_share": gain["gain"] / teacher_gap if teacher_gap > 0 else None,
               "teacher_minus_distilled": 100 * (teacher["accuracy"] - distilled["accuracy_mean"])}

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

    return {
        "title": paper_title(summary, manifest),
        "profile": profile,
        "description": params.get("description") or "",
        "manifest": manifest,
        "params": params,
        "git": manifest.get("git") or {},
        "machine": {"cpu": manifest.get("cpu"), "cores": manifest.get("cores"),
                    "python": manifest.get("python"), "torch": (manifest.get("packages") or {}).get("torch"),
                    "transformers": (manifest.get("packages") or {}).get("transformers")},
        "data": data,
        "dataset": DATASET_INFO.get((data or {}).get("dataset", ""), None),
        "subsampled": any((params.get("data") or {}).get(k) for k in ("max_train", "max_val", "max_test")),
        "teacher": teacher,
        "teacher_key": key,
        "teacher_info": TEACHER_INFO.get(key) if key else None,
        "depth": _depth_context(depth_rows(summary, manifest)),
        "depths": [r for r in depth_rows(summary, manifest) if r["name"] != "teacher"],
        "students": students,
        "baseline": baseline,
        "distilled": distilled,
        "original_student": students.get("student_original"),
        "tfidf": students.get("tfidf_logreg"),
        "n_seeds": n_seeds,
        "gain": gain,
        "gap": gap,
        "augmented": augmented,
        "aug": aug,
        "student_params": params.get("student") or {},
        "student_run": summary.get("student") if isinstance(summary.get("student"), dict) else {},
        "distill_params": distill_params,
        "teacher_params": params.get("teacher") or {},
        "deploy_params": params.get("deploy") or {},
        "inference": summary.get("inference") or None,
        "serving": summary.get("serving") or None,
        "speed": _speed_context(summary),
        "serve": _serving_context(summary),
        "bench_machine": (summary.get("inference") or {}).get("machine") if isinstance(summary.get("inference"), dict) else None,
        "published": _published_context(gain, augmented),
        "alpha_level": SIGNIFICANCE_LEVEL,
        "min_seeds": MIN_SEEDS_FOR_INTERVAL,
        "balancer_gain": BALANCER_GAIN,
        "tables": tables,
        "figures": figures,
        "table": table,
        "table_ref": table_ref,
        "figure": figure,
        "figures_of": figures_of,
        "fig_ref": fig_ref,
        "cite": cite,
        "references": lambda: [anchors.REFERENCES[r] for r in refs_used],
        "model_label": plots.model_label,
        "student_phrase": lambda name: STUDENT_PHRASES.get(name, plots.model_label(name)),
    }


def paper_title(summary: dict[str, Any], manifest: dict[str, Any]) -> str:
    key = teacher_key(summary, manifest)
    teacher = TEACHER_INFO[key]["label"] if key else "a transformer"
    dataset = DATASET_INFO.get((summary.get("data") or {}).get("dataset", ""), {}).get("label", "sentiment data")
    return f"Distilling {teacher} into a BiLSTM for sentiment on {dataset}: a reproducible study"
