"""The FastAPI service, started for real (uvicorn subprocess on a free loopback port) with small real models."""

from __future__ import annotations

import json
import threading
import time

import httpx
import numpy as np
import pytest
from serving_fixtures import BROKEN, SERVER_LIMITS, LiveServer

from kdutils.metrics import softmax
from kdutils.predictors import load_predictor

# Session fixtures (serving_run, live_server) shared by the serving tests.
pytest_plugins = ("serving_fixtures",)

MODELS = ["teacher", "teacher@onnx", "teacher@onnx-int8", BROKEN, "student_distilled",
          "student_distilled@onnx", "student_distilled@onnx-int8"]


@pytest.fixture(scope="module")
def client(live_server: LiveServer):
    with httpx.Client(base_url=live_server.url, timeout=60) as c:
        yield c


def test_not_ready_while_loading(live_server: LiveServer) -> None:
    status, body = live_server.early["healthz"]
    assert status == 503 and body["status"] == "loading"
    assert live_server.early["predict"] == 503


def test_health_models_ping(client: httpx.Client) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and sorted(r.json()["models"]) == sorted(MODELS)
    assert client.get("/ping").json() == {"status": "ok"}
    listed = {m["name"]: m for m in client.get("/models").json()}
    assert sorted(listed) == sorted(MODELS)
    assert listed["student_distilled@onnx-int8"]["runtime"] == "onnx-int8"
    assert listed["teacher"]["kind"] == "teacher" and listed["teacher"]["params"] > 1_000_000
    # int8 weights are smaller on disk than fp32.
    assert listed["teacher@onnx-int8"]["size_mb"] < listed["teacher@onnx"]["size_mb"]


def test_openapi_documents_the_api(client: httpx.Client) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/healthz", "/models", "/predict/{model}", "/noop", "/ping"} <= set(spec["paths"])
    req = spec["components"]["schemas"]["PredictRequest"]
    assert req["properties"]["texts"]["maxItems"] == SERVER_LIMITS["max_texts"]
    assert req["examples"]
    responses = spec["paths"]["/predict/{model}"]["post"]["responses"]
    assert {"200", "404", "413", "422", "500"} <= set(responses)


@pytest.mark.parametrize("model", [m for m in MODELS if m != BROKEN])
def test_predict_matches_in_process_model(client: httpx.Client, live_server: LiveServer, model: str) -> None:
    texts = live_server.fixture.texts[:SERVER_LIMITS["max_texts"]]
    r = client.post(f"/predict/{model}", json={"texts": texts})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == model and body["latency_ms"] > 0
    expected = softmax(load_predictor(live_server.run, model, threads=1).predict_logits(texts))
    got = np.array([[p["probabilities"][n] for n in live_server.fixture.label_names] for p in body["predictions"]])
    np.testing.assert_allclose(got, expected, atol=1e-5)  # same order, same numbers
    labels = [p["label_id"] for p in body["predictions"]]
    assert labels == expected.argmax(axis=1).tolist()
    assert [p["label"] for p in body["predictions"]] == [live_server.fixture.label_names[i] for i in labels]


BAD_BODIES = {
    "malformed json": b'{"texts": ["a fine film"',
    "missing texts": b"{}",
    "empty texts": b'{"texts": []}',
    "texts not a list": b'{"texts": "a fine film"}',
    "non-string text": b'{"texts": ["fine", 3]}',
    "blank text": b'{"texts": ["fine", " \\n\\t "]}',
    "too many texts": json.dumps({"texts": ["fine"] * (SERVER_LIMITS["max_texts"] + 1)}).encode(),
    "text too long": json.dumps({"texts": ["a" * (SERVER_LIMITS["max_chars"] + 1)]}).encode(),
    "unknown field": b'{"texts": ["fine"], "extra": 1}',
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
@pytest.mark.parametrize("path", ["/predict/student_distilled", "/noop"])
def test_bad_input_is_422(client: httpx.Client, case: str, path: str) -> None:
    r = client.post(path, content=BAD_BODIES[case], headers={"content-type": "application/json"})
    assert r.status_code == 422, (case, r.text)
    assert r.json()["detail"]
    assert len(r.content) < 2000  # errors never echo the (possibly huge) input back


def test_limits_at_the_boundary_pass(client: httpx.Client) -> None:
    texts = ["x" * SERVER_LIMITS["max_chars"]] + ["fine"] * (SERVER_LIMITS["max_texts"] - 1)
    r = client.post("/predict/student_distilled@onnx", json={"texts": texts})
    assert r.status_code == 200 and len(r.json()["predictions"]) == SERVER_LIMITS["max_texts"]
    assert client.post("/noop", json={"texts": texts}).json()["n"] == SERVER_LIMITS["max_texts"]


def test_unknown_model_is_404(client: httpx.Client) -> None:
    r = client.post("/predict/bert-large", json={"texts": ["fine"]})
    assert r.status_code == 404 and "student_distilled" in r.json()["detail"]


def test_body_over_limit_is_413(client: httpx.Client) -> None:
    big = json.dumps({"texts": ["a" * (SERVER_LIMITS["max_body_bytes"] + 10)]}).encode()
    # announced by Content-Length
    r = client.post("/predict/student_distilled", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413

    # streamed without Content-Length (chunked): counted as it arrives
    def chunks():
        for i in range(0, len(big), 4096):
            yield big[i:i + 4096]

    r = client.post("/predict/student_distilled", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert client.get("/healthz").status_code == 200


def test_model_failure_is_500_and_server_survives(client: httpx.Client) -> None:
    # teacher_L1 claims max_length 600 but has 512 positions: a long text fails inside the model.
    r = client.post(f"/predict/{BROKEN}", json={"texts": ["good " * 700]})
    assert r.status_code == 500
    assert BROKEN in r.json()["detail"] and "predictions" not in r.json()
    ok = client.post(f"/predict/{BROKEN}", json={"texts": ["good"]})
    assert ok.status_code == 200
    assert client.get("/healthz").status_code == 200


def test_model_calls_do_not_block_the_event_loop(client: httpx.Client, live_server: LiveServer) -> None:
    # Heavy requests: 8 texts of ~500 tokens through the 1-layer teacher (512 positions).
    heavy = {"texts": ["a long , winding and very good film " * 60] * SERVER_LIMITS["max_texts"]}
    t0 = time.perf_counter()
    assert client.post(f"/predict/{BROKEN}", json=heavy).status_code == 200
    one_heavy = time.perf_counter() - t0

    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=live_server.url, timeout=120) as c:
            while not stop.is_set():
                assert c.post(f"/predict/{BROKEN}", json=heavy).status_code == 200

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(one_heavy)  # the server is now busy with model calls
        pings = []
        for _ in range(5):
            t1 = time.perf_counter()
            assert client.get("/ping").status_code == 200
            pings.append(time.perf_counter() - t1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    # A model call on the event loop would hold every ping for the rest of a heavy call.
    assert float(np.median(pings)) < one_heavy / 3, (pings, one_heavy)


def test_one_log_line_per_request(client: httpx.Client, live_server: LiveServer) -> None:
    def count() -> int:
        return sum(" GET /ping 200 " in line for line in live_server.proc.log_path.read_text().splitlines())

    before = count()
    for _ in range(3):
        client.get("/ping")
    time.sleep(0.2)
    assert count() == before + 3


def test_micro_batching_batches_and_isolates_a_failing_request(live_server: LiveServer) -> None:
    import asyncio

    from kdutils.serve import MicroBatcher, ModelRunner

    predictor = load_predictor(live_server.run, BROKEN, threads=1)
    good = [[t] for t in live_server.fixture.texts[:3]]
    bad = ["good " * 700]  # beyond the 512 positions: fails inside the model

    runner = ModelRunner(workers=2)

    async def run() -> list:
        with pytest.raises(RuntimeError, match="not started"):
            await runner(predictor.predict_logits, good[0])
        runner.start()
        batcher = MicroBatcher(predictor, max_wait_s=0.05, max_batch=64, runner=runner)
        try:
            return await asyncio.gather(*(batcher.submit(t) for t in [good[0], bad, good[1], good[2]]),
                                        return_exceptions=True)
        finally:
            batcher.task.cancel()
            runner.stop()

    results = asyncio.run(run())
    assert isinstance(results[1], Exception)
    expected = predictor.predict_logits([t[0] for t in good])
    np.testing.assert_allclose(np.concatenate([results[0], results[2], results[3]]), expected, atol=1e-5)
