"""The paper's tables: each built from the summary as formatted strings, written as Markdown and LaTeX."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from kdutils import plots
from kdutils.report import anchors
from kdutils.report.facts import DATASET_INFO, TEACHER_INFO
from kdutils.report.formatting import (
    RUNTIME_LABELS,
    format_cell,
    header,
    integer,
    is_num,
    looks_numeric,
    millions,
    ms,
    num,
    pct_ci,
    pct_num,
    points,
    points_ci,
    pval,
    seconds,
)
from kdutils.report.results import (
    SETUP_LABELS,
    depth_rows,
    inference_rows,
    models_of,
    records,
    serving_rows,
    short_list,
    teacher_key,
    throughput_key,
)
from kdutils.runs import atomic_path
from kdutils.stats import MIN_SEEDS_FOR_INTERVAL


@dataclass
class Table:
    """A paper table: cells are already formatted strings (so Markdown and LaTeX agree)."""

    name: str
    caption: str
    frame: pd.DataFrame

    def markdown(self) -> str:
        body = self.frame.to_markdown(index=False, disable_numparse=True)
        return body + "\n"

    def latex(self) -> str:
        cols = "".join("r" if self.frame[c].map(looks_numeric).all() else "l" for c in self.frame.columns)
        text = self.frame.to_latex(index=False, escape=True, caption=_latex_escape(self.caption),
                                   label=f"tab:{self.name}", column_format=cols)
        # In LaTeX text mode < and > print as other glyphs.
        text = text.replace("<", r"\textless{}").replace(">", r"\textgreater{}")
        return text


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _latex_escape(text: str) -> str:
    """Escape a caption (pandas escapes cells, not captions); one pass so escapes are not re-escaped."""
    return re.sub(r"[\\&%$#_{}~^]", lambda m: _LATEX_SPECIALS[m.group(0)], text)


def _table(name: str, caption: str, rows: list[dict[str, str]]) -> Table:
    frame = pd.DataFrame(rows).fillna("—")
    # A column the run recorded nothing for says nothing; leave it out.
    empty = [c for c in frame.columns if (frame[c] == "—").all()]
    return Table(name, caption, frame.drop(columns=empty))


def records_table(name: str, caption: str, rows: list[dict[str, Any]]) -> Table:
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    cells = [{header(k): format_cell(k, row.get(k)) for k in keys} for row in rows]
    return _table(name, caption, cells)


def data_table(summary: dict[str, Any]) -> Table | None:
    data = summary.get("data")
    if not isinstance(data, dict):
        return None
    info = DATASET_INFO.get(data.get("dataset", ""), {})
    rows = [{"Property": "Data set", "Value": info.get("label", str(data.get("dataset", "—")))}]
    if data.get("label_names"):
        rows.append({"Property": "Labels", "Value": ", ".join(map(str, data["label_names"]))})
    for key, label in (("n_train", "Train sentences"), ("n_val", "Validation sentences"),
                       ("n_test", "Test sentences")):
        if key in data:
            rows.append({"Property": label, "Value": integer(data[key])})
    if data.get("split_method"):
        rows.append({"Property": "Split", "Value": str(data["split_method"])})
    skip = {"dataset", "label_names", "n_train", "n_val", "n_test", "split_method", "sources", "files",
            "num_labels", "info"}
    for key, value in data.items():
        if key in skip or isinstance(value, dict) or (isinstance(value, list) and not short_list(value)):
            continue
        rows.append({"Property": header(key), "Value": format_cell(key, value)})
    sources = data.get("sources") or data.get("files") or {}
    for src, digest in sorted(sources.items()) if isinstance(sources, dict) else []:
        rows.append({"Property": f"sha256 of {Path(str(src)).name}", "Value": f"{str(digest)[:16]}…"})
    return _table("data_card", "Data card: the splits the study trains and tests on.", rows)


def teacher_table(summary: dict[str, Any], manifest: dict[str, Any]) -> Table | None:
    rows = depth_rows(summary, manifest)
    if not rows:
        return None
    key = teacher_key(summary, manifest)
    label = TEACHER_INFO[key]["label"] if key else "teacher"
    # One measurement for every latency in the paper: the deployment benchmark's interleaved
    # eager-PyTorch p50 (notebook 05). Notebook 02 times each teacher right after training,
    # with other threads and load; its figure is used, and named as such, only without 05's.
    benchmark = {str(b.get("model")): b.get("latency_ms_p50") for b in inference_rows(summary)
                 if str(b.get("runtime", "torch")) == "torch" and is_num(b.get("latency_ms_p50"))}
    if benchmark:
        latency_header = "Batch-1 p50 latency (ms)"
        latency_note = (" Latency: batch-1 p50 in eager PyTorch from the deployment benchmark, the same "
                        "measurement as the inference table.")
    else:
        threads = sorted({int(r["torch_threads"]) for r in rows if is_num(r.get("torch_threads"))})
        latency_header = "Batch-1 latency (ms, notebook 02)"
        latency_note = (" Latency: median batch-1 time measured by the teacher notebook right after training"
                        + (f" with {' or '.join(map(str, threads))} torch thread(s)" if threads else "")
                        + "; the deployment benchmark did not run.")
    cells = []
    for r in rows:
        name = f"{label} (full)" if r["name"] == "teacher" else f"{label}, first {r['layers']} layers"
        latency = benchmark.get(r["name"]) if benchmark else r.get("latency_ms_b1")
        cells.append({
            "Model": name,
            "Layers": integer(r.get("layers")),
            "Params": millions(r.get("params")),
            "Size (MB)": format_cell("size_mb", r.get("size_mb")),
            "Accuracy (%)": pct_num(r.get("accuracy")),
            "Macro-F1 (%)": pct_num(r.get("macro_f1")),
            "ECE": num(r.get("ece"), 2),
            "Train time": seconds(r.get("train_seconds")),
            latency_header: ms(latency),
        })
    return _table("teachers", "Teacher and depth sweep: the fine-tuned teacher and its truncations to "
                  "the first k layers (each fine-tuned), on the test split." + latency_note, cells)


STUDENT_ORDER = ("tfidf_logreg", "student_original", "student_baseline", "student_distilled")


def student_table(summary: dict[str, Any]) -> Table | None:
    models = models_of(summary)
    rows = []
    for name in STUDENT_ORDER:
        m = models.get(name)
        if not isinstance(m, dict):
            continue
        n_runs = m.get("n_seeds", len(m["per_seed"]) if isinstance(m.get("per_seed"), list) else None)
        single = n_runs == 1  # one run (e.g. the deterministic TF-IDF model) has no interval
        rows.append({
            "Model": plots.model_label(name),
            "Seeds": integer(n_runs) if n_runs is not None else "—",
            "Accuracy (%)": pct_num(m.get("accuracy_mean")),
            "Std (points)": "—" if single or not is_num(m.get("accuracy_std")) else f"{100 * m['accuracy_std']:.2f}",
            "95% CI (%)": "one run" if single else pct_ci(m.get("accuracy_ci95")),
            "Macro-F1 (%)": pct_num(m.get("macro_f1_mean")),
            "ECE": num(m.get("ece_mean"), 2),
            "Params": millions(m.get("params")),
            "Size (MB)": format_cell("size_mb", m.get("size_mb")),
            "Agreement with teacher (%)": pct_num(m.get("teacher_agreement")),
        })
    if not rows:
        return None
    return _table("students", "Students on the test split: mean over seeds, sample standard deviation "
                  f"and a 95% t-interval of the mean (clipped to 0-100%; none below {MIN_SEEDS_FOR_INTERVAL} "
                  "seeds).", rows)


def headline_rows(summary: dict[str, Any], manifest: dict[str, Any]) -> list[dict[str, str]]:
    models = models_of(summary)
    dist = summary.get("distillation") if isinstance(summary.get("distillation"), dict) else {}
    rows = []
    t = models.get("teacher")
    if isinstance(t, dict):
        key = teacher_key(summary, manifest)
        rows.append({"Model": f"Teacher ({TEACHER_INFO[key]['label']})" if key else "Teacher",
                     "Accuracy (%)": pct_num(t.get("accuracy")), "95% CI (%)": "one run",
                     "Gain over baseline (points)": "", "p": ""})
    b = models.get("student_baseline")
    if isinstance(b, dict):
        rows.append({"Model": plots.model_label("student_baseline"), "Accuracy (%)": pct_num(b.get("accuracy_mean")),
                     "95% CI (%)": pct_ci(b.get("accuracy_ci95")), "Gain over baseline (points)": "", "p": ""})
    d = models.get("student_distilled")
    if isinstance(d, dict):
        gain = points(dist.get("gain_points_mean"), 2)
        if dist.get("gain_ci95"):
            gain += f" {points_ci(dist.get('gain_ci95'), 2)}"
        rows.append({"Model": plots.model_label("student_distilled"), "Accuracy (%)": pct_num(d.get("accuracy_mean")),
                     "95% CI (%)": pct_ci(d.get("accuracy_ci95")),
                     "Gain over baseline (points)": gain if dist else "not run",
                     "p": pval(dist.get("p_value")) if dist else "not run"})
    return rows


def headline_table(summary: dict[str, Any], manifest: dict[str, Any]) -> Table | None:
    rows = headline_rows(summary, manifest)
    if not rows:
        return None
    return _table("headline", "Headline: teacher, label-trained and distilled BiLSTM on the test split "
                  "(students: mean and 95% interval over seeds; gain: distilled minus baseline, with its "
                  "95% interval).", rows)


# Ablation columns shown when the rows carry them (kdutils.distill.setting_row); others are generic.
_ABLATION_COLUMNS = {
    "setting": "Setting", "seeds": "Seeds", "accuracy_mean": "Test accuracy (%)",
    "accuracy_ci95": "95% CI (%)", "val_accuracy_mean": "Val. accuracy (%)", "epochs_mean": "Epochs",
    "train_seconds_mean": "Train time",
}


def ablation_table(summary: dict[str, Any]) -> Table | None:
    dist = summary.get("distillation")
    rows = records(dist.get("ablation")) if isinstance(dist, dict) else []
    if not rows:
        return None
    if any(isinstance(r.get("accuracy_ci95"), list) for r in rows):
        over = (f"mean and 95% interval over the row's seeds (none below {MIN_SEEDS_FOR_INTERVAL} seeds)")
    else:
        seeds = sorted({int(r["seeds"]) for r in rows if is_num(r.get("seeds"))})
        count = " or ".join(map(str, seeds)) if seeds else "too few"
        over = (f"mean over the row's {count} seed{'' if seeds == [1] else 's'}, too few for an interval "
                f"(none is given below {MIN_SEEDS_FOR_INTERVAL})")
    caption = (f"Ablation of the distillation recipe on the test split: {over}; the setting is chosen on "
               "validation accuracy.")
    if "setting" not in rows[0]:
        return records_table("ablation", caption, rows)
    cells = []
    for r in rows:
        cell = {}
        for key, title in _ABLATION_COLUMNS.items():
            if key not in r:
                continue
            if key == "epochs_mean":
                cell[title] = f"{r[key]:.1f}" if is_num(r[key]) else "—"
            elif key == "train_seconds_mean":
                cell[title] = seconds(r[key])
            else:
                cell[title] = format_cell(key, r[key])
        cells.append(cell)
    return _table("ablation", caption, cells)


def inference_table(summary: dict[str, Any]) -> Table | None:
    rows = inference_rows(summary)
    if not rows:
        return None
    if not any("latency_ms_p50" in r for r in rows):
        return records_table("inference", "Inference on the CPU per model and runtime.", rows)
    machine = (summary.get("inference") or {}).get("machine") or {}
    cells = []
    batch = None
    for r in rows:
        tkey = throughput_key(r)
        batch = r.get("throughput_batch", batch)
        cells.append({
            "Model": plots.model_label(str(r.get("model"))),
            "Runtime": RUNTIME_LABELS.get(str(r.get("runtime")), str(r.get("runtime", "—"))),
            "p50 latency (ms)": ms(r.get("latency_ms_p50")),
            "p95 latency (ms)": ms(r.get("latency_ms_p95")),
            "Throughput (sent./s)": num(r.get(tkey)) if tkey else "—",
            "Accuracy (%)": pct_num(r.get("accuracy")),
            "Agreement with eager (%)": pct_num(r.get("agreement_with_eager")),
            "Size (MB)": format_cell("size_mb", r.get("size_mb")),
        })
    where = ""
    if machine:
        threads = machine.get("torch_threads", machine.get("threads"))
        where = f" on {machine.get('cpu', 'the CPU')}" + (f" with {threads} threads" if threads else "")
    return _table("inference", f"In-process inference{where}: batch-1 latency over single test sentences, "
                  f"throughput at batch {batch if batch else 'size as recorded'} over the test split, and "
                  "agreement of each runtime's predictions with eager PyTorch.", cells)


def serving_table(summary: dict[str, Any]) -> Table | None:
    rows = serving_rows(summary)
    if not rows:
        return None
    if not any("rps" in r for r in rows):
        return records_table("serving", "Serving under load.", rows)
    cells = [{
        "Setup": SETUP_LABELS.get(str(r.get("setup")), str(r.get("setup", "—")).replace("_", " ")),
        "Model": plots.model_label(str(r.get("model"))),
        "Concurrency": integer(r.get("concurrency")),
        "Requests": integer(r.get("requests_total", r.get("requests"))),
        "Errors": integer(r.get("errors")),
        "Req/s": num(r.get("rps")),
        "p50 (ms)": ms(r.get("p50_ms")),
        "p95 (ms)": ms(r.get("p95_ms")),
        "p99 (ms)": ms(r.get("p99_ms")),
    } for r in rows]
    return _table("serving", "Serving under load through HTTP: closed-loop users (concurrency = requests in "
                  "flight), latency percentiles of successful requests after the warm-up, throughput and "
                  "every failed request.", cells)


_STATS_COLUMNS = ("requests_total", "requests", "errors", "rps", "p50_ms", "p95_ms", "p99_ms")


def _window_rows(section: dict[str, Any], windows: dict[str, str]) -> list[dict[str, Any]]:
    """Rows for the load-statistics sub-dicts of a side result (``before``/``after``, ``off``/``on``)."""
    rows = []
    for key, label in windows.items():
        stats = section.get(key)
        if isinstance(stats, dict):
            rows.append({"": label, **{k: stats[k] for k in _STATS_COLUMNS if k in stats}})
    return rows


PEER_LABELS = {"floor": "floor (bare ASGI)", "naive": "naive FastAPI peer", "ours": "kdutils.serve"}


def serving_peers_table(summary: dict[str, Any]) -> Table | None:
    """``serving.peers``: the floor, the naive peer and our server at each number of requests in flight."""
    section = summary.get("serving")
    peers = section.get("peers") if isinstance(section, dict) else None
    if not isinstance(peers, dict):
        return None
    cells = []
    for server, label in PEER_LABELS.items():
        by_c = peers.get(server)
        if not isinstance(by_c, dict):
            continue
        for c, st in sorted(by_c.items(), key=lambda kv: int(kv[0]) if str(kv[0]).isdigit() else 0):
            if isinstance(st, dict):
                cells.append({"Server": label, "In flight": integer(int(c)) if str(c).isdigit() else str(c),
                              "p50 (ms)": ms(st.get("p50_ms")), "p95 (ms)": ms(st.get("p95_ms")),
                              "p99 (ms)": ms(st.get("p99_ms")), "Req/s": num(st.get("rps")),
                              "Errors": integer(st.get("errors"))})
    if not cells:
        return None
    model = plots.model_label(str(peers.get("model", "").split("@")[0])) if peers.get("model") else "the model"
    return _table("serving_peers", f"{model} ({peers.get('runtime', '—')}) over HTTP: a bare ASGI app on the same "
                  "uvicorn stack (the floor), the FastAPI app a user would write (the naive peer) and our service, "
                  "one process each, measured interleaved by a light keep-alive client in its own process.", cells)


def serving_side_tables(summary: dict[str, Any]) -> dict[str, Table]:
    """The HTTP overhead, the fault test and micro-batching, one small table each when recorded."""
    section = summary.get("serving")
    if not isinstance(section, dict):
        return {}
    specs = {
        "http_overhead": ({"floor": "floor: bare ASGI app, same model", "noop": "no-op endpoint (HTTP only)",
                           "predict": "prediction"},
                          "Cost of HTTP itself: the service's no-op endpoint and a prediction at one request in "
                          "flight, on one replica."),
        "fault_test": ({"before": "before the kill", "after": "after the kill"},
                       "Fault test: one replica killed halfway through a load run behind nginx."),
        "micro_batching": ({"off": "micro-batching off", "on": "micro-batching on"},
                           "Micro-batching on one replica at the highest concurrency, back to back with it off."),
    }
    out: dict[str, Table] = {}
    peers = serving_peers_table(summary)
    if peers is not None:
        out["serving_peers"] = peers
    for key, (windows, caption) in specs.items():
        value = section.get(key)
        rows = _window_rows(value, windows) if isinstance(value, dict) else []
        if rows:
            out[f"serving_{key}"] = records_table(f"serving_{key}", caption, rows)
    return out


def published_table(summary: dict[str, Any], manifest: dict[str, Any]) -> Table:
    """Published distillation results beside this run's (their task, teacher and gain vs ours)."""
    rows = []
    for r in anchors.DISTILLATION_RESULTS:
        rows.append({
            "Work": r.work,
            "Task": r.task,
            "Teacher": r.teacher,
            "Teacher acc. (%)": f"{r.teacher_accuracy:.1f}" if r.teacher_accuracy is not None else "—",
            "Student": r.student,
            "Baseline (%)": f"{r.baseline_accuracy:.1f}" if r.baseline_accuracy is not None else "—",
            "Distilled (%)": f"{r.distilled_accuracy:.1f}" if r.distilled_accuracy is not None else "—",
            "Gain (points)": points(r.gain_points) if r.gain_points is not None else "—",
            "Augmented": {True: "yes", False: "no", None: "—"}[r.augmentation],
        })
    models = models_of(summary)
    dist = summary.get("distillation") if isinstance(summary.get("distillation"), dict) else {}
    t, b, d = (models.get(k) for k in ("teacher", "student_baseline", "student_distilled"))
    if isinstance(d, dict) or isinstance(b, dict):
        key = teacher_key(summary, manifest)
        data = summary.get("data") or {}
        params = manifest.get("parameters") or {}
        n_iter = (params.get("distill") or {}).get("n_iter")
        teacher = TEACHER_INFO[key]["label"] if key else "teacher"
        rows.append({
            "Work": f"This study ({manifest.get('profile') or 'this run'})",
            "Task": f"{DATASET_INFO.get(data.get('dataset', ''), {}).get('label', data.get('dataset', '—'))} test",
            "Teacher": teacher,
            "Teacher acc. (%)": pct_num((t or {}).get("accuracy")),
            "Student": "1-layer BiLSTM" + (f", {millions(d.get('params'))} params" if isinstance(d, dict) else ""),
            "Baseline (%)": pct_num((b or {}).get("accuracy_mean")),
            "Distilled (%)": pct_num((d or {}).get("accuracy_mean")),
            "Gain (points)": points(dist.get("gain_points_mean")) if dist else "not run",
            "Augmented": ("yes" if n_iter else "no") if is_num(n_iter) else "—",
        })
    return _table("published", "Published distillation results beside this study. Accuracies of other "
                  "works are on SST-2 or other data and are not directly comparable.", rows)


def small_transformers_table() -> Table:
    rows = [{"Model": r.model, "Layers / hidden": r.shape, "Params": r.params, "SST-2 (%)": r.sst2,
             "Speed": r.speed or "—"} for r in anchors.SMALL_TRANSFORMERS]
    return _table("published_small", "Published small transformers on SST-2, for the depth and speed "
                  "comparison (separately pretrained or distilled, unlike our truncations).", rows)


def build_tables(summary: dict[str, Any], manifest: dict[str, Any] | None = None) -> dict[str, Table]:
    """Every table the paper can show, keyed by name; sections the run lacks are absent."""
    manifest = manifest or {}
    # Insertion order is the numbering: the order the paper shows them in.
    built = {
        "data_card": data_table(summary),
        "headline": headline_table(summary, manifest),
        "teachers": teacher_table(summary, manifest),
        "students": student_table(summary),
        "ablation": ablation_table(summary),
        "inference": inference_table(summary),
        "serving": serving_table(summary),
        **serving_side_tables(summary),
        "published": published_table(summary, manifest),
        "published_small": small_transformers_table(),
    }
    return {k: v for k, v in built.items() if v is not None}


def write_tables(tables: dict[str, Table], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables.values():
        for suffix, text in ((".md", table.markdown()), (".tex", table.latex())):
            target = directory / f"{table.name}{suffix}"
            with atomic_path(target) as tmp:
                tmp.write_text(text, encoding="utf-8")
            written.append(target)
    return written
