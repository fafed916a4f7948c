"""Quantities read off a run's summary that tables, text and index share: intervals, depths, rows."""

from __future__ import annotations

import re
from typing import Any

from kdutils.report.facts import TEACHER_INFO
from kdutils.report.formatting import clip_ci, is_num, points_ci
from kdutils.stats import MIN_SEEDS_FOR_INTERVAL

# The level the paper's wording uses for "significant".
SIGNIFICANCE_LEVEL = 0.05


# ---- intervals over seeds: one rule for every table, sentence and page


def n_of(entry: dict[str, Any], *keys: str) -> int | None:
    """How many seeds an entry's interval is over: the first count or list of ``keys`` it has."""
    for key in keys:
        value = entry.get(key)
        if is_num(value):
            return int(value)
        if isinstance(value, list) and value:
            return len(value)
    return None


def _guarded(ci: Any, n: int | None, low: float, high: float) -> list[float] | None:
    if n is not None and n < MIN_SEEDS_FOR_INTERVAL:
        return None
    return clip_ci(ci, low, high)


def guard_intervals(summary: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``summary`` whose intervals over seeds follow :func:`kdutils.stats.mean_ci`'s rule.

    Runs recorded before that rule have t-intervals from two seeds (``[-80.4, 173.7]`` %) and
    bounds beyond what is possible. Here an interval over fewer than
    :data:`kdutils.stats.MIN_SEEDS_FOR_INTERVAL` seeds becomes ``None`` and the others are
    clipped to the feasible range (accuracies [0, 1], gains [-100, 100] points), so the paper,
    its tables and the index say the same thing. ``summary.json`` itself is never changed.
    """
    out = dict(summary)
    models = summary.get("models")
    if isinstance(models, dict):
        out["models"] = {}
        for name, m in models.items():
            if isinstance(m, dict):
                m = dict(m)
                n = n_of(m, "n_seeds", "per_seed")
                for key in [k for k in m if k.endswith("_ci95")]:
                    m[key] = _guarded(m[key], n, 0.0, 1.0)
            out["models"][name] = m
    dist = summary.get("distillation")
    if isinstance(dist, dict):
        dist = dict(dist)
        if "gain_ci95" in dist:
            dist["gain_ci95"] = _guarded(dist["gain_ci95"], n_of(dist, "gain_points_per_seed", "seeds"),
                                         -100.0, 100.0)
        if "bootstrap_gain_ci95_points" in dist:  # over test sentences, not seeds: clipped only
            dist["bootstrap_gain_ci95_points"] = clip_ci(dist["bootstrap_gain_ci95_points"], -100.0, 100.0)
        if isinstance(dist.get("ablation"), list):
            rows = []
            for r in dist["ablation"]:
                if isinstance(r, dict):
                    r = dict(r)
                    n = n_of(r, "seeds")
                    for key in [k for k in r if k.endswith("_ci95")]:
                        r[key] = _guarded(r[key], n, 0.0, 1.0)
                rows.append(r)
            dist["ablation"] = rows
        out["distillation"] = dist
    return out


def significance_caveat(significant: bool, ci: Any, n_seeds: int | None) -> str:
    """What must follow "significant at the 0.05 level" wherever it is said ('' when nothing).

    The p-value comes from a paired test over test sentences (seed-averaged accuracies); it
    says nothing about new seeds. When the interval over seeds is missing (too few seeds) or
    includes zero, a "significant" gain is qualified in the same words in the abstract, the
    results, the discussion, the run index and notebook 04. Starts with ", " when not empty.
    """
    if not significant:
        return ""
    seeds = f"{n_seeds} seed{'s' if n_seeds != 1 else ''}" if n_seeds is not None else "these seeds"
    clipped = clip_ci(ci, -100.0, 100.0)
    if clipped is None:
        return (f", although with {seeds} there is no interval over seeds (none below {MIN_SEEDS_FOR_INTERVAL}): "
                "the test covers new test sentences, not new seeds")
    if clipped[0] <= 0 <= clipped[1]:
        return f", although with {seeds} the 95% interval over seeds, {points_ci(clipped, 2)}, still includes zero"
    return ""


def models_of(summary: dict[str, Any]) -> dict[str, Any]:
    return summary.get("models") or {}


def depth_of(name: str) -> int | None:
    m = re.fullmatch(r"teacher_L(\d+)", name)
    return int(m.group(1)) if m else None


def teacher_key(summary: dict[str, Any], manifest: dict[str, Any]) -> str | None:
    """The teacher's registry name (``minilm-l6``), from the run's summary or its parameters."""
    t = models_of(summary).get("teacher") or {}
    for candidate in (t.get("name"), t.get("teacher"), (manifest.get("parameters") or {}).get("teacher", {}).get("name")):
        if isinstance(candidate, str) and candidate in TEACHER_INFO:
            return candidate
    return None


def teacher_layers(summary: dict[str, Any], manifest: dict[str, Any]) -> int | None:
    t = models_of(summary).get("teacher") or {}
    for key in ("layers", "num_layers", "num_hidden_layers"):
        if is_num(t.get(key)):
            return int(t[key])
    key = teacher_key(summary, manifest)
    return TEACHER_INFO[key]["layers"] if key else None


def depth_rows(summary: dict[str, Any], manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The truncated teachers and the full teacher, shallowest first."""
    rows = []
    for name, m in models_of(summary).items():
        d = depth_of(name)
        if d is not None and isinstance(m, dict):
            rows.append({"name": name, "layers": d, **m})
    rows.sort(key=lambda r: r["layers"])
    full = models_of(summary).get("teacher")
    if isinstance(full, dict):
        rows.append({"name": "teacher", "layers": teacher_layers(summary, manifest), **full})
    return rows


def inference_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """``inference`` as one row per model and runtime.

    The deployment notebook writes ``{model: {runtime: row}, "machine": {...}}``
    (kdutils.bench.micro_benchmark); a list of rows or ``{model: row}`` also works.
    """
    section = summary.get("inference")
    if isinstance(section, dict):
        rows = []
        for model, by_rt in section.items():
            if model == "machine" or not isinstance(by_rt, dict):
                continue
            if by_rt and all(isinstance(v, dict) for v in by_rt.values()):
                rows.extend({"model": model, "runtime": rt, **row} for rt, row in by_rt.items())
            else:
                rows.append({"model": model, **by_rt})
        return rows
    return records(section)


def throughput_key(row: dict[str, Any]) -> str | None:
    keys = [k for k in row if k.startswith("throughput_per_s") and is_num(row[k])]
    return keys[0] if keys else None


SERVING_SIDE_KEYS = ("fault_test", "http_overhead", "micro_batching", "settings", "peers", "batching")
SETUP_LABELS = {"1_replica": "1 replica", "N_replicas_nginx": "replicas behind nginx"}


def serving_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """``serving`` load results as rows (setup, model, concurrency, stats).

    The deployment notebook writes ``{setup: {model: {concurrency: stats}}}`` beside side
    results (``fault_test``, ``http_overhead``, ...); a list of rows also works.
    """
    section = summary.get("serving")
    if not isinstance(section, dict):
        return records(section)
    rows = []
    for setup, by_model in section.items():
        if setup in SERVING_SIDE_KEYS or not isinstance(by_model, dict):
            continue
        for model, by_c in by_model.items():
            if not isinstance(by_c, dict):
                continue
            for c, stats in by_c.items():
                if isinstance(stats, dict):
                    rows.append({"setup": setup, "model": model,
                                 "concurrency": int(c) if str(c).isdigit() else c, **stats})
    return rows


def records(obj: Any, key_name: str = "model") -> list[dict[str, Any]]:
    """Rows of a summary section of unknown shape: a list of dicts, or a dict of dicts keyed by model.

    Nested dicts one level down are flattened (``latency_ms: {p50: ..}`` -> ``latency_ms_p50``);
    long lists (per-seed values) are dropped from a table.
    """
    if isinstance(obj, dict):
        nested = [v for v in obj.values() if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)]
        if all(isinstance(v, dict) for v in obj.values()) and obj:
            rows = [{key_name: k, **v} for k, v in obj.items()]
        elif len(nested) == 1:
            rows = nested[0]
        else:
            rows = [{k: v for k, v in obj.items() if not isinstance(v, dict | list) or short_list(v)}]
    elif isinstance(obj, list):
        rows = [r for r in obj if isinstance(r, dict)]
    else:
        return []
    flat = []
    for row in rows:
        out: dict[str, Any] = {}
        for k, v in row.items():
            if isinstance(v, dict):
                for k2, v2 in v.items():
                    if not isinstance(v2, dict | list) or short_list(v2):
                        out[f"{k}_{k2}"] = v2
            elif isinstance(v, list) and not short_list(v):
                continue
            else:
                out[k] = v
        flat.append(out)
    return flat


def short_list(v: Any) -> bool:
    return isinstance(v, list) and len(v) <= 6 and all(not isinstance(x, dict | list) for x in v)
