"""The light interleaved client, the floor and naive peer servers, and the peer comparison (real servers on loopback)."""

from __future__ import annotations

import json
import os
import sys

import httpx
import numpy as np
import pytest
from serving_fixtures import LiveServer

from kdutils.report import serving_plots
from kdutils.serving import bench, lightload
from kdutils.serving.deploy import free_ports, spawn, wait_healthy
from kdutils.study.files import REPO_ROOT

pytest_plugins = ("serving_fixtures",)
MODEL = "student_distilled@onnx"


def test_light_client_measures_in_its_own_process_and_counts_errors(live_server: LiveServer) -> None:
    bodies = [json.dumps({"texts": [t]}).encode() for t in live_server.fixture.texts[:10]]
    targets = [lightload.Target("noop", f"{live_server.url}/noop"),
               lightload.Target("predict", f"{live_server.url}/predict/{MODEL}"),
               lightload.Target("missing", f"{live_server.url}/predict/no_such_model")]
    out = lightload.interleaved(targets, bodies, 2, requests=40, repeats=2, block=20, warmup=5)
    for name in ("noop", "predict"):
        st = out[name]
        assert st["errors"] == 0 and st["requests"] == 80 and st["rps"] > 0
        assert 0 < st["p50_ms"] <= st["p95_ms"] <= st["p99_ms"] and len(st["p50_ms_repeats"]) == 2
    assert out["missing"]["errors"] == 80 and out["missing"]["p50_ms"] is None  # 404s are failures
    client = out["_client"]
    assert client["pid"] != os.getpid() and client["cpu_s"] > 0 and client["cpu_us_per_request"] > 0
    with pytest.raises(ValueError, match="distinct"):
        lightload.interleaved([targets[0], targets[0]], bodies, 1)
    with pytest.raises(ValueError, match="positive"):
        lightload.interleaved(targets, bodies, 0)


def test_floor_and_naive_peers_answer_like_our_server(live_server: LiveServer, tmp_path) -> None:
    texts = live_server.fixture.texts[:5]
    ours = httpx.post(f"{live_server.url}/predict/{MODEL}", json={"texts": texts}, timeout=30).json()
    procs = []
    try:
        for peer, port in zip(("floor", "naive"), free_ports(2), strict=True):
            cmd = [sys.executable, "-m", "kdutils.serving.peers", peer, "--run", str(live_server.run.root),
                   "--model", MODEL, "--port", str(port)]
            procs.append(spawn(peer, cmd, tmp_path / f"{peer}.log", cwd=REPO_ROOT, url=f"http://127.0.0.1:{port}"))
        for proc in procs:
            wait_healthy(proc.url, proc, timeout=120)
            got = httpx.post(f"{proc.url}/predict/{MODEL}", json={"texts": texts}, timeout=30).json()
            assert [p["label"] for p in got["predictions"]] == [p["label"] for p in ours["predictions"]]
            np.testing.assert_allclose([list(p["probabilities"].values()) for p in got["predictions"]],
                                       [list(p["probabilities"].values()) for p in ours["predictions"]], atol=1e-6)
    finally:
        for proc in procs:
            proc.stop()


def test_peer_comparison_fills_the_summary_contract(live_server: LiveServer, tmp_path) -> None:
    names = ["student_distilled", MODEL]
    res = bench.peer_comparison(live_server.run.root, MODEL, live_server.fixture.texts[:20], tmp_path,
                                overhead_models=names, concurrency=(1, 4), requests=40, repeats=1, block=20)
    peers = res["peers"]
    assert peers["model"] == MODEL and peers["runtime"] == "onnx"
    for server in ("floor", "naive", "ours"):
        assert set(peers[server]) == {"1", "4"}
        for st in peers[server].values():
            assert {"p50_ms", "p95_ms", "p99_ms", "rps", "errors"} <= set(st) and st["errors"] == 0
            assert st["p50_ms"] > 0 and st["rps"] > 0
    assert set(res["batching"]["on"]) == {"1", "4"} and res["batching"]["on"]["4"]["errors"] == 0
    oh = res["http_overhead"]
    assert oh["model"] == "student_distilled" and set(oh["runtimes"]) == set(names)
    assert oh["noop"]["errors"] == 0 and oh["p50_ratio"] > 0
    assert len(bench.peers_frame(peers)) == 6
    serving_plots.plot_peers(peers)
