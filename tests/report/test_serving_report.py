"""The paper's serving-peers table and HTTP-overhead sentence follow summary.json's serving section."""

from __future__ import annotations

import copy

from report_runs import manifest, study_summary

from kdutils import report
from kdutils.study.summary import validate_summary

SUMMARY = study_summary()


def _stats(p50: float, rps: float) -> dict:
    return {"p50_ms": p50, "p95_ms": p50 * 1.5, "p99_ms": p50 * 2, "rps": rps, "errors": 0, "requests": 1000,
            "p50_ms_repeats": [p50, p50, p50]}


def _with_peers(ours_p50: float, in_process: float) -> dict:
    summary = copy.deepcopy(SUMMARY)
    serving = summary["serving"]
    model = "student_distilled@onnx"
    serving["peers"] = {**serving["peers"], "model": model, "runtime": "onnx",
                        "floor": {"1": _stats(0.68, 1400), "4": _stats(2.1, 1800), "16": _stats(8.0, 1900)},
                        "naive": {"1": _stats(1.32, 700), "4": _stats(4.0, 900), "16": _stats(17.0, 920)},
                        "ours": {"1": _stats(ours_p50, 900), "4": _stats(3.0, 1200), "16": _stats(12.0, 1250)}}
    overhead = serving["http_overhead"]
    serving["http_overhead"] = {**overhead, "floor": _stats(0.68, 1400),
                                "runtimes": {**overhead["runtimes"],
                                             model: {"stats": _stats(ours_p50, 900), "p50_ratio": 2.0,
                                                     "in_process_p50_ms": in_process}}}
    return summary


def _paper(raw: dict) -> tuple[str, dict]:
    summary, run_manifest = report.guard_intervals(validate_summary(raw)), manifest("default")
    tables = report.build_tables(summary, run_manifest)
    md = report.render_markdown(report.build_context(summary, run_manifest, tables,
                                                     report.collect_figures(None), "default"))
    return md, tables


def test_peers_table_and_sentence_follow_the_numbers() -> None:
    md, tables = _paper(_with_peers(ours_p50=1.10, in_process=0.47))
    peers = tables["serving_peers"].frame
    assert len(peers) == 9 and set(peers["Server"]) == set(report.PEER_LABELS.values())
    assert peers.iloc[0]["p50 (ms)"] == "0.68" and peers.iloc[-1]["Req/s"] == "1,250"
    assert "the floor, a bare ASGI app" in md and "our service in 1.10 ms (0.833x the peer)" in md
    assert "HTTP, JSON and validation add 0.63 ms, more than the model itself" in md
    assert "1.36x the peer's" in md
    assert "most of a small model's latency is HTTP" not in md and "None" not in md
    # The same sentence turns when the model's own time is the larger part.
    md, _ = _paper(_with_peers(ours_p50=1.10, in_process=0.80))
    assert "the model's own time is the larger part of a prediction" in md


def test_without_peer_latencies_no_conclusion_is_drawn_from_a_sequential_measurement() -> None:
    # No request succeeded at one request in flight, so the peers give no p50 to compare (a summary
    # without serving.peers at all is refused: test_report's required-field test).
    summary = copy.deepcopy(SUMMARY)
    for server in ("floor", "naive", "ours"):
        summary["serving"]["peers"][server]["1"].update(p50_ms=None, p95_ms=None, p99_ms=None)
    md, tables = _paper(summary)
    assert tables["serving_peers"].frame.iloc[0]["p50 (ms)"] == "—"
    assert "no conclusion is drawn here about where a prediction's time goes" in md
    assert "most of a small model's latency is HTTP" not in md
