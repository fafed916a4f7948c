"""The paper's tables: each built from the summary as formatted strings, written as Markdown and LaTeX."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from kdutils import plots
from kdutils.report import anchors
from kdutils.report.batch_plots import run_label
from kdutils.report.formatting import (
    RUNTIME_LABELS,
    counted,
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
    times,
)
from kdutils.report.results import (
    SETUP_LABELS,
    TeacherComparison,
    depth_rows,
    eager_p50_ms,
    inference_rows,
    served_p50_ms,
    serving_rows,
    teacher_key,
    teacher_label,
)
from kdutils.stats import MIN_SEEDS_FOR_INTERVAL
from kdutils.study.escaping import markdown_frame
from kdutils.study.files import atomic_path
from kdutils.study.specs import DATASETS
from kdutils.study.summary import DistilledStudentEntry, FaultTest, Summary, notebook_for


@dataclass
class Table:
    """A paper table: cells are already formatted strings (so Markdown and LaTeX agree)."""

    name: str
    caption: str
    frame: pd.DataFrame

    def markdown(self) -> str:
        """The table in GitHub Markdown (cells as formatted, no index); the text of every cell and
        header is escaped (:func:`~kdutils.study.escaping.markdown_text`), so a label name such as
        ``bad|worse`` or ``<img ...>`` stays one cell of text."""
        body = markdown_frame(self.frame).to_markdown(index=False, disable_numparse=True)
        return body + "\n"

    def latex(self) -> str:
        """The table as a LaTeX ``table`` with caption and ``tab:<name>`` label; numbers right-aligned."""
        cols = "".join("r" if self.frame[c].map(looks_numeric).all() else "l" for c in self.frame.columns)
        text = self.frame.to_latex(index=False, escape=True, caption=_latex_escape(self.caption),
                                   label=f"tab:{self.name}", column_format=cols)
        # In LaTeX text mode < > | print as other glyphs (pandas escapes none of them).
        text = text.replace("<", r"\textless{}").replace(">", r"\textgreater{}").replace("|", r"\textbar{}")
        return text


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _latex_escape(text: str) -> str:
    """Escape a caption (pandas escapes cells, not captions); one pass so escapes are not re-escaped."""
    return re.sub(r"[\\&%$#_{}~^]", lambda m: _LATEX_SPECIALS[m.group(0)], text)


def _dataset_label(name: str) -> str:
    spec = DATASETS.get(name)
    return spec.label if spec else name


def _table(name: str, caption: str, rows: list[dict[str, str]]) -> Table:
    frame = pd.DataFrame(rows).fillna("—")
    # A column the run recorded nothing for says nothing; leave it out.
    empty = [c for c in frame.columns if (frame[c] == "—").all()]
    return Table(name, caption, frame.drop(columns=empty))


def records_table(name: str, caption: str, rows: list[dict[str, Any]]) -> Table:
    """A table of generic records: columns named by :func:`header`, cells by :func:`format_cell`."""
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    cells = [{header(k): format_cell(k, row.get(k)) for k in keys} for row in rows]
    return _table(name, caption, cells)


# Shown in their own words (the counts, the split) or not at all (num_labels: the labels say it);
# the sources come last, as short digests.
_DATA_NOT_GENERIC = frozenset({"dataset", "num_labels", "label_names", "n_train", "n_val", "n_test",
                               "split_method", "sources"})


def data_table(summary: Summary) -> Table | None:
    """The data card (``data``): data set, labels, split sizes, every other recorded property and
    the sources' sha256 digests; ``None`` before notebook 01."""
    data = summary.data
    if data is None:
        return None
    rows = [{"Property": "Data set", "Value": _dataset_label(data.dataset)}]
    if data.label_names:
        rows.append({"Property": "Labels", "Value": ", ".join(data.label_names)})
    for count, label in ((data.n_train, "Train sentences"), (data.n_val, "Validation sentences"),
                         (data.n_test, "Test sentences")):
        rows.append({"Property": label, "Value": integer(count)})
    if data.split_method:
        rows.append({"Property": "Split", "Value": data.split_method})
    for key, value in data.model_dump().items():
        if key not in _DATA_NOT_GENERIC:
            rows.append({"Property": header(key), "Value": format_cell(key, value)})
    for src, digest in sorted(data.sources.items()):
        rows.append({"Property": f"sha256 of {Path(src).name}", "Value": f"{digest[:16]}…"})
    return _table("data_card", "Data card: the splits the study trains and tests on.", rows)


def teacher_table(summary: Summary, manifest: dict[str, Any]) -> Table | None:
    """The teacher and its depth sweep on the test split, shallowest first; ``None`` before 02.

    Latency is the deployment benchmark's eager batch-1 p50 when notebook 05 ran, otherwise
    notebook 02's own timing, and the caption says which.
    """
    rows = depth_rows(summary)
    if not rows:
        return None
    label = teacher_label(manifest)
    # One measurement for every latency in the paper: the deployment benchmark's interleaved
    # eager-PyTorch p50 (notebook 05). Notebook 02 times each teacher right after training,
    # with other threads and load; its figure is used, and named as such, only without 05's.
    benchmark = {b.model: b.row.latency_ms_p50 for b in inference_rows(summary) if b.runtime == "torch"}
    if benchmark:
        latency_header = "Batch-1 p50 latency (ms)"
        latency_note = (" Latency: batch-1 p50 in eager PyTorch from the deployment benchmark, the same "
                        "measurement as the inference table.")
    else:
        threads = sorted({r.entry.torch_threads for r in rows})
        latency_header = "Batch-1 latency (ms, notebook 02)"
        latency_note = (" Latency: median batch-1 time measured by the teacher notebook right after training"
                        f" with {' or '.join(map(str, threads))} torch thread(s)"
                        "; the deployment benchmark did not run.")
    cells = []
    for r in rows:
        name = f"{label} (full)" if r.name == "teacher" else f"{label}, first {r.layers} layers"
        e = r.entry
        cells.append({
            "Model": name,
            "Layers": integer(r.layers),
            "Params": millions(e.params),
            "Size (MB)": format_cell("size_mb", e.size_mb),
            "Accuracy (%)": pct_num(e.accuracy),
            "Macro-F1 (%)": pct_num(e.macro_f1),
            "ECE": num(e.ece, 2),
            "Train time": seconds(e.train_seconds),
            latency_header: ms(benchmark.get(r.name) if benchmark else e.latency_ms_b1),
        })
    return _table("teachers", "Teacher and depth sweep: the fine-tuned teacher and its truncations to "
                  "the first k layers (each fine-tuned), on the test split." + latency_note, cells)


STUDENT_ORDER = ("tfidf_logreg", "student_original", "student_baseline", "student_distilled")


def student_table(summary: Summary) -> Table | None:
    """Every student over seeds (mean, standard deviation, interval), in :data:`STUDENT_ORDER`."""
    models = summary.models
    rows = []
    for name in STUDENT_ORDER if models is not None else ():
        m = getattr(models, name)
        if m is None:
            continue
        single = m.n_seeds == 1  # one run (e.g. the deterministic TF-IDF model) has no interval
        rows.append({
            "Model": plots.model_label(name),
            "Seeds": integer(m.n_seeds),
            "Accuracy (%)": pct_num(m.accuracy_mean),
            "Std (points)": "—" if single else f"{100 * m.accuracy_std:.2f}",
            "95% CI (%)": "one run" if single else pct_ci(m.accuracy_ci95),
            "Macro-F1 (%)": pct_num(m.macro_f1_mean),
            "ECE": num(m.ece_mean, 2),
            "Params": millions(m.params),
            "Size (MB)": format_cell("size_mb", m.size_mb),
            "Agreement with teacher (%)": pct_num(m.teacher_agreement
                                                  if isinstance(m, DistilledStudentEntry) else None),
        })
    if not rows:
        return None
    return _table("students", "Students on the test split: mean over seeds, sample standard deviation "
                  f"and a 95% t-interval of the mean (clipped to 0-100%; none below {MIN_SEEDS_FOR_INTERVAL} "
                  "seeds).", rows)


def headline_rows(summary: Summary, manifest: dict[str, Any]) -> list[dict[str, str]]:
    """Teacher, label-trained and distilled student with the gain, as formatted cells (those run)."""
    models, dist = summary.models, summary.distillation
    if models is None:
        return []
    rows = []
    t, b, d = models.teacher, models.student_baseline, models.student_distilled
    if t is not None:
        rows.append({"Model": f"Teacher ({teacher_label(manifest)})" if teacher_key(manifest) else "Teacher",
                     "Accuracy (%)": pct_num(t.accuracy), "95% CI (%)": "one run",
                     "Gain over baseline (points)": "", "p": ""})
    if b is not None:
        rows.append({"Model": plots.model_label("student_baseline"), "Accuracy (%)": pct_num(b.accuracy_mean),
                     "95% CI (%)": pct_ci(b.accuracy_ci95), "Gain over baseline (points)": "", "p": ""})
    if d is not None:
        gain, p = "not run", "not run"
        if dist is not None:
            gain, p = points(dist.gain_points_mean, 2), pval(dist.p_value)
            if dist.gain_ci95:
                gain += f" {points_ci(dist.gain_ci95, 2)}"
        rows.append({"Model": plots.model_label("student_distilled"), "Accuracy (%)": pct_num(d.accuracy_mean),
                     "95% CI (%)": pct_ci(d.accuracy_ci95), "Gain over baseline (points)": gain, "p": p})
    return rows


def headline_table(summary: Summary, manifest: dict[str, Any]) -> Table | None:
    """:func:`headline_rows` as the paper's headline table; ``None`` before notebook 02."""
    rows = headline_rows(summary, manifest)
    if not rows:
        return None
    return _table("headline", "Headline: teacher, label-trained and distilled BiLSTM on the test split "
                  "(students: mean and 95% interval over seeds; gain: distilled minus baseline, with its "
                  "95% interval).", rows)


_ABLATION_COLUMNS = {
    "setting": "Setting", "seeds": "Seeds", "accuracy_mean": "Test accuracy (%)",
    "accuracy_ci95": "95% CI (%)", "val_accuracy_mean": "Val. accuracy (%)",
}


def ablation_table(summary: Summary) -> Table | None:
    """Every distillation setting tried (``distillation.ablation``); ``None`` without one."""
    rows = summary.distillation.ablation if summary.distillation is not None else []
    if not rows:
        return None
    if any(r.accuracy_ci95 is not None for r in rows):
        over = (f"mean and 95% interval over the row's seeds (none below {MIN_SEEDS_FOR_INTERVAL} seeds)")
    else:
        seeds = sorted({r.seeds for r in rows})
        over = (f"mean over the row's {' or '.join(map(str, seeds))} seed{'' if seeds == [1] else 's'}, too few "
                f"for an interval (none is given below {MIN_SEEDS_FOR_INTERVAL})")
    caption = (f"Ablation of the distillation recipe on the test split: {over}; the setting is chosen on "
               "validation accuracy.")
    cells = [{title: format_cell(key, getattr(r, key)) for key, title in _ABLATION_COLUMNS.items()} for r in rows]
    return _table("ablation", caption, cells)


def inference_table(summary: Summary) -> Table | None:
    """In-process latency, throughput, accuracy and agreement per model and runtime (notebook 05)."""
    rows = inference_rows(summary)
    if summary.inference is None or not rows:
        return None
    machine = summary.inference.machine
    cells = [{
        "Model": plots.model_label(b.model),
        "Runtime": RUNTIME_LABELS.get(b.runtime, b.runtime),
        "p50 latency (ms)": ms(b.row.latency_ms_p50),
        "p95 latency (ms)": ms(b.row.latency_ms_p95),
        "Throughput (sent./s)": num(b.row.throughput_per_s),
        "Accuracy (%)": pct_num(b.row.accuracy),
        "Agreement with eager (%)": pct_num(b.row.agreement_with_eager),
        "Size (MB)": format_cell("size_mb", b.row.size_mb),
    } for b in rows]
    batch = rows[-1].row.throughput_batch
    return _table("inference", f"In-process inference on {machine.cpu} with {counted(machine.torch_threads, 'thread')}: "
                  "batch-1 latency over single test sentences, "
                  f"throughput at batch {batch} over the test split, and "
                  "agreement of each runtime's predictions with eager PyTorch.", cells)


def batch_table(summary: Summary) -> Table | None:
    """Batch scoring file to file per configuration (notebook 06); ``None`` for a run without it."""
    section = summary.batch_scoring
    if section is None:
        return None
    cells = [{
        "Configuration": run_label(r.model_dump()),
        "Sentences": num(r.sentences),
        "Cores": str(r.cores),
        "Sent./s": num(r.sentences_per_s),
        "Per core": num(r.per_core_per_s),
        "Steady sent./s": num(r.steady_sentences_per_s) if r.steady_sentences_per_s is not None else "",
        "Start-up (s)": f"{r.startup_s:.1f}" if r.startup_s is not None else "",
        "GFLOP/s per core": f"{r.gflops_per_core:.1f}" if r.gflops_per_core is not None else "",
    } for r in section.runs]
    return _table("batch_scoring", f"Batch scoring file to file on {section.cpu}: {section.corpus_sentences:,} sentences "
                  f"for the students, the first {section.teacher_sentences:,} for the teacher and the transformers "
                  "pipeline; medians over interleaved rounds, start-up included except in the steady rate.", cells)


def serving_table(summary: Summary) -> Table | None:
    """Closed-loop load runs over HTTP per setup, model and concurrency (notebook 05)."""
    rows = serving_rows(summary)
    if not rows:
        return None
    cells = [{
        "Setup": SETUP_LABELS.get(r.setup, r.setup.replace("_", " ")),
        "Model": plots.model_label(r.model),
        "Concurrency": integer(r.concurrency),
        "Requests": integer(r.stats.requests_total),
        "Errors": integer(r.stats.errors),
        "Req/s": num(r.stats.rps),
        "p50 (ms)": ms(r.stats.p50_ms),
        "p95 (ms)": ms(r.stats.p95_ms),
        "p99 (ms)": ms(r.stats.p99_ms),
    } for r in rows]
    return _table("serving", "Serving under load through HTTP: closed-loop users (concurrency = requests in "
                  "flight), latency percentiles of successful requests after the warm-up, throughput and "
                  "every failed request.", cells)


_STATS_COLUMNS = ("requests_total", "requests", "errors", "rps", "p50_ms", "p95_ms", "p99_ms")


def _window_rows(windows: dict[str, tuple[str, Any]]) -> list[dict[str, Any]]:
    """One row per labelled window of load statistics (``before``/``after``, ``off``/``on``)."""
    rows = []
    for label, stats in windows.values():
        rows.append({"": label, **{k: getattr(stats, k) for k in _STATS_COLUMNS if k in type(stats).model_fields}})
    return rows


PEER_LABELS = {"floor": "floor (bare ASGI)", "naive": "naive FastAPI peer", "ours": "kdutils.serve"}


def serving_peers_table(summary: Summary) -> Table | None:
    """``serving.peers``: the floor, the naive peer and our server at each number of requests in flight."""
    if summary.serving is None:
        return None
    peers = summary.serving.peers
    cells = []
    for server, label in PEER_LABELS.items():
        for c, st in sorted(getattr(peers, server).items(), key=lambda kv: int(kv[0])):
            cells.append({"Server": label, "In flight": integer(int(c)), "p50 (ms)": ms(st.p50_ms),
                          "p95 (ms)": ms(st.p95_ms), "p99 (ms)": ms(st.p99_ms), "Req/s": num(st.rps),
                          "Errors": integer(st.errors)})
    if not cells:
        return None
    model = plots.model_label(peers.model.split("@")[0]) if peers.model else "the model"
    return _table("serving_peers", f"{model} ({peers.runtime}) over HTTP: a bare ASGI app on the same "
                  "uvicorn stack (the floor), the FastAPI app a user would write (the naive peer) and our service, "
                  "one process each, measured interleaved by a light keep-alive client in its own process.", cells)


def serving_side_tables(summary: Summary) -> dict[str, Table]:
    """The peers, the HTTP overhead, the fault test and micro-batching, one small table each."""
    serving = summary.serving
    if serving is None:
        return {}
    out: dict[str, Table] = {}
    peers = serving_peers_table(summary)
    if peers is not None:
        out["serving_peers"] = peers
    oh, mb = serving.http_overhead, serving.micro_batching
    windows: dict[str, tuple[dict[str, tuple[str, Any]], str]] = {
        "http_overhead": ({"floor": ("floor: bare ASGI app, same model", oh.floor),
                           "noop": ("no-op endpoint (HTTP only)", oh.noop), "predict": ("prediction", oh.predict)},
                          "Cost of HTTP itself: the service's no-op endpoint and a prediction at one request in "
                          "flight, on one replica."),
    }
    if isinstance(serving.fault_test, FaultTest):
        windows["fault_test"] = ({"before": ("before the kill", serving.fault_test.before),
                                  "after": ("after the kill", serving.fault_test.after)},
                                 "Fault test: one replica killed halfway through a load run behind nginx.")
    windows["micro_batching"] = ({"off": ("micro-batching off", mb.off), "on": ("micro-batching on", mb.on)},
                                 "Micro-batching on one replica at the highest concurrency, back to back with it off.")
    for key, (stats, caption) in windows.items():
        out[f"serving_{key}"] = records_table(f"serving_{key}", caption, _window_rows(stats))
    return out


def published_table(summary: Summary, manifest: dict[str, Any]) -> Table:
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
    models, dist = summary.models, summary.distillation
    t, b, d = ((models.teacher, models.student_baseline, models.student_distilled) if models is not None
               else (None, None, None))
    if d is not None or b is not None:
        data = summary.data
        params = manifest.get("parameters") or {}
        n_iter = (params.get("distill") or {}).get("n_iter")
        rows.append({
            "Work": f"This study ({manifest.get('profile') or 'this run'})",
            "Task": f"{_dataset_label(data.dataset) if data else '—'} test",
            "Teacher": teacher_label(manifest),
            "Teacher acc. (%)": pct_num(t.accuracy if t is not None else None),
            "Student": "1-layer BiLSTM" + (f", {millions(d.params)} params" if d is not None else ""),
            "Baseline (%)": pct_num(b.accuracy_mean if b is not None else None),
            "Distilled (%)": pct_num(d.accuracy_mean if d is not None else None),
            "Gain (points)": points(dist.gain_points_mean) if dist is not None else "not run",
            "Augmented": ("yes" if n_iter else "no") if is_num(n_iter) else "—",
        })
    return _table("published", "Published distillation results beside this study. Accuracies of other "
                  "works are on SST-2 or other data and are not directly comparable.", rows)


def small_transformers_table() -> Table:
    """Published small transformers on SST-2 (:data:`kdutils.report.anchors.SMALL_TRANSFORMERS`)."""
    rows = [{"Model": r.model, "Layers / hidden": r.shape, "Params": r.params, "SST-2 (%)": r.sst2,
             "Speed": r.speed or "—"} for r in anchors.SMALL_TRANSFORMERS]
    return _table("published_small", "Published small transformers on SST-2, for the depth and speed "
                  "comparison (separately pretrained or distilled, unlike our truncations).", rows)


def comparison_table(rows: list[TeacherComparison]) -> Table:
    """The teachers side by side (one row per published run, main study first): accuracies, the gain,
    the share of the gap closed and what the teacher costs against the distilled student."""
    cells = [{
        "Teacher": f"{c.teacher_label} ({c.teacher_layers} layers, {millions(c.teacher_params)})",
        "Profile": c.profile,
        "Teacher (%)": pct_num(c.teacher_accuracy),
        "Baseline (%)": pct_num(c.baseline_accuracy),
        "Distilled (%)": pct_num(c.distilled_accuracy),
        "Gain (points)": points(c.gain_points, 2) + (f" {points_ci(c.gain_ci95, 2)}" if c.gain_ci95 else ""),
        "p": pval(c.p_value),
        "Gap closed (%)": pct_num(c.gap_closed, 0),
        "Latency ratio": times(c.latency_ratio) if c.latency_ratio is not None else "—",
        "Size ratio": times(c.size_ratio) if c.size_ratio is not None else "—",
    } for c in rows]
    return _table("teacher_comparison", "The teachers side by side, each run with the same data, students and "
                  "distillation recipe, on the test split: accuracy of the teacher, of the label-trained (baseline) "
                  "and of the distilled BiLSTM (students: mean over seeds); the gain, distilled minus baseline, with "
                  "its 95% interval over seeds and one-sided p; the share of the teacher-baseline gap distillation "
                  "closes, (distilled - baseline) / (teacher - baseline); and how many times the full teacher is "
                  "slower (batch-1 p50 latency in eager PyTorch, from the run's deployment benchmark) and larger "
                  "(weights on disk, MB) than the distilled student.", cells)


def depth_table_name(profile: str) -> str:
    """The name of :func:`depth_table` for a run of ``profile`` (``depth_paper``)."""
    return f"depth_{profile}"


def depth_table(summary: Summary, manifest: dict[str, Any], profile: str) -> Table | None:
    """A run's teacher at every depth, deepest first, beside its two main students: test accuracy,
    batch-1 p50 in process (eager PyTorch) and p50 over HTTP at one request in flight (one replica),
    as the seed study served them. Named :func:`depth_table_name`; ``None`` without a teacher."""
    rows = depth_rows(summary)
    if not rows:
        return None
    label = teacher_label(manifest)
    cells = [{"Model": f"{label} (full)" if r.name == "teacher" else f"{label}, first {r.layers} layers",
              "Layers": integer(r.layers), "Params": millions(r.entry.params), "Accuracy (%)": pct_num(r.entry.accuracy),
              "In process (ms)": ms(eager_p50_ms(summary, r.name)), "Over HTTP (ms)": ms(served_p50_ms(summary, r.name))}
             for r in reversed(rows)]
    models = summary.models
    for name in ("student_distilled", "student_baseline"):
        m = getattr(models, name) if models is not None else None
        if m is not None:
            cells.append({"Model": plots.model_label(name), "Layers": "—", "Params": millions(m.params),
                          "Accuracy (%)": pct_num(m.accuracy_mean), "In process (ms)": ms(eager_p50_ms(summary, name)),
                          "Over HTTP (ms)": ms(served_p50_ms(summary, name))})
    return _table(depth_table_name(profile), f"The {label} teacher (profile {profile}) at every depth (the full model "
                  "and its truncations to the first k layers, each fine-tuned) beside the BiLSTM students: test "
                  "accuracy (students: mean over seeds) and batch-1 p50 latency, in process (eager PyTorch, the "
                  "deployment benchmark) and over HTTP with one request in flight (one replica).", cells)


def targets_table_name(profile: str) -> str:
    """The name of :func:`targets_table` for a run of ``profile`` (``targets_paper``)."""
    return f"targets_{profile}"


def targets_table(summary: Summary, profile: str) -> Table | None:
    """A run's targets (``summary.targets``: notebook 04's, then 05's), each met, missed or not
    measured, with the measured figures. Named :func:`targets_table_name`; ``None`` without targets."""
    rows = summary.targets.rows() if summary.targets is not None else []
    # "04" for 04_distillation: the notebook that writes the section (kdutils.study.steps).
    cells = [{"Notebook": (notebook_for(("targets", section)) or "").split("_")[0], "Target": row.target,
              "Met": "not measured" if row.met is None else "yes" if row.met else "no",
              "Measured": row.measured}
             for section, row in rows]
    if not cells:
        return None
    # 06 only when the run has its targets: an older run's caption stays as it was published.
    notebooks = "04: distillation, 05: deployment" + (", 06: batch scoring" if summary.targets.batch_scoring else "")
    return _table(targets_table_name(profile), f"The targets of profile {profile}, as its notebooks checked them "
                  f"({notebooks}), with the measured figures.", cells)


def build_tables(summary: Summary, manifest: dict[str, Any] | None = None,
                 comparison: dict[str, Table] | None = None) -> dict[str, Table]:
    """Every table the paper can show, keyed by name, in the paper's order; sections the run lacks
    are absent. ``summary`` should have been through :func:`~kdutils.report.results.guard_intervals`.
    ``comparison`` (the teachers side by side and other runs' depth tables) goes before the
    published results, where the paper shows it."""
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
        "batch_scoring": batch_table(summary),
        **(comparison or {}),
        "published": published_table(summary, manifest),
        "published_small": small_transformers_table(),
    }
    return {k: v for k, v in built.items() if v is not None}

def write_tables(tables: dict[str, Table], directory: Path) -> list[Path]:
    """Write each table as ``<name>.md`` and ``<name>.tex`` into ``directory`` (atomically); the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables.values():
        for suffix, text in ((".md", table.markdown()), (".tex", table.latex())):
            target = directory / f"{table.name}{suffix}"
            with atomic_path(target) as tmp:
                tmp.write_text(text, encoding="utf-8")
            written.append(target)
    return written
