"""The FastAPI service, started for real (uvicorn subprocess on a free loopback port) with small real models."""

from __future__ import annotations

import json
import threading
import time

import httpx
import numpy as np
import pytest
from serving_fixtures import BODY_LIMIT, BROKEN, SERVER_LIMITS, LiveServer

from kdutils.inference.predictors import load_predictor
from kdutils.metrics import softmax

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
    big = json.dumps({"texts": ["a" * (BODY_LIMIT + 10)]}).encode()
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


def test_batching_runs_an_idle_request_at_once_and_isolates_a_failing_one(live_server: LiveServer) -> None:
    import asyncio

    from kdutils.serving.registry import MicroBatcher, ModelRunner

    predictor = load_predictor(live_server.run, BROKEN, threads=1)
    good = [[t] for t in live_server.fixture.texts[:3]]
    bad = ["good " * 700]  # beyond the 512 positions: fails inside the model

    runner = ModelRunner(workers=2)

    async def run() -> tuple[list, float, list[int]]:
        with pytest.raises(RuntimeError, match="not started"):
            await runner(predictor.predict_logits, good[0])
        runner.start()
        batcher = MicroBatcher(predictor.predict_logits, max_batch=64, runner=runner)
        try:
            # An idle model: the request runs at once, alone, without waiting for company.
            t0 = time.perf_counter()
            await batcher.submit(good[0])
            alone = time.perf_counter() - t0
            assert batcher.batch_sizes == [1] and not batcher.busy
            # Four at once: the first finds the model idle and runs alone; the three that
            # arrive while it runs form the next batch, whose bad member is then run alone.
            results = await asyncio.gather(*(batcher.submit(t) for t in [good[0], bad, good[1], good[2]]),
                                           return_exceptions=True)
            return results, alone, list(batcher.batch_sizes)
        finally:
            batcher.cancel()
            runner.stop()

    results, alone, sizes = asyncio.run(run())
    assert sizes == [1, 1, 3], sizes
    assert alone < 0.5  # no batching window is waited out
    assert isinstance(results[1], Exception)
    expected = predictor.predict_logits([t[0] for t in [good[0], good[1], good[2]]])
    np.testing.assert_allclose(np.concatenate([results[0], results[2], results[3]]), expected, atol=1e-5)


LONG_TEXT = " ".join(["a sprawling , uneven but often moving film about memory and loss ."] * 25)  # ~300 words


@pytest.mark.parametrize("model", [m for m in MODELS if m != BROKEN])
def test_answers_do_not_depend_on_batch_mates(client: httpx.Client, live_server: LiveServer, model: str) -> None:
    # Issue 12.1: dynamic int8 scaled activations over the whole batch, so "dull ." changed
    # beside a long text. Every runtime: in process and over HTTP, alone and with batch-mates.
    predictor = load_predictor(live_server.run, model, threads=1)
    short = ["dull .", "a fine film"]
    alone = np.concatenate([predictor.predict_logits([t]) for t in short])
    mates = [LONG_TEXT, live_server.fixture.texts[0], "x " * 3]
    together = predictor.predict_logits([mates[0], short[0], mates[1], short[1], mates[2]])[[1, 3]]
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-5)
    if model.endswith("int8"):
        np.testing.assert_array_equal(together, alone)  # row by row: bit for bit
        assert not predictor.batch_invariant  # and never batched across requests by the server

    def probs(texts: list[str]) -> np.ndarray:
        r = client.post(f"/predict/{model}", json={"texts": texts})
        assert r.status_code == 200, r.text
        return np.array([list(p["probabilities"].values()) for p in r.json()["predictions"]])

    np.testing.assert_allclose(probs([LONG_TEXT, "dull ."])[1], probs(["dull ."])[0], rtol=0, atol=1e-6)


def test_student_encoder_matches_the_vocab_encoding(live_server: LiveServer) -> None:
    from kdutils.inference.predictors import discover, make_encoder

    encoder = make_encoder(discover(live_server.run)["student_distilled"])
    texts = [*live_server.fixture.texts[:20], "", LONG_TEXT]
    ids, mask = encoder.vocab.encode_batch(texts, encoder.max_length)
    batch, counts = encoder.encode(texts)
    np.testing.assert_array_equal(batch["input_ids"], ids.numpy())
    np.testing.assert_array_equal(batch["mask"], mask.numpy())
    assert counts[20] == 0 and (counts[:20] > 0).all()


TEACHERS = [m for m in MODELS if m.startswith("teacher")]
STUDENTS = [m for m in MODELS if m.startswith("student")]
INVISIBLE = ["\u200b\u200b", "\ufeff", "\u2060", "\u0000", "\u200b \u2060\n"]


def _student_drops_invisible() -> bool:
    from kdutils.data.text import tokenize

    return not any(tokenize(t) for t in INVISIBLE)


# The student side depends on kdutils.data.text dropping format (Cf) and control (Cc) characters
# (work on another branch); until it does these run as expected failures, then as tests.
needs_text_cf_cc = pytest.mark.xfail(not _student_drops_invisible(), strict=True,
                                     reason="kdutils.data.text.tokenize does not drop Cf/Cc characters yet")


def _assert_no_tokens_422(r: httpx.Response, index: int) -> None:
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert [d["loc"] for d in detail] == [["body", "texts", index]]
    assert "no tokens" in detail[0]["msg"] and "word, number or punctuation" in detail[0]["msg"]


@pytest.mark.parametrize("text", INVISIBLE)
@pytest.mark.parametrize("model", TEACHERS)
def test_invisible_only_text_is_422_for_teachers(client: httpx.Client, model: str, text: str) -> None:
    _assert_no_tokens_422(client.post(f"/predict/{model}", json={"texts": ["fine", text]}), 1)


@needs_text_cf_cc
@pytest.mark.parametrize("path", [f"/predict/{m}" for m in STUDENTS] + ["/noop"])
def test_invisible_only_text_is_422_for_students_and_noop(client: httpx.Client, path: str) -> None:
    for text in INVISIBLE:
        _assert_no_tokens_422(client.post(path, json={"texts": ["fine", text]}), 1)


@pytest.mark.parametrize("path", [f"/predict/{m}" for m in MODELS if m != BROKEN] + ["/noop"])
def test_text_with_no_tokens_is_422_and_visible_text_is_not(client: httpx.Client, path: str) -> None:
    # "<br />" is markup the word tokenizer strips: nothing is left for the student (and /noop).
    if "teacher" not in path:
        _assert_no_tokens_422(client.post(path, json={"texts": ["fine", "<br />"]}), 1)
    for text in ["\u200bfine\u200b", "!", "caf\u00e9", "\u4e2d"]:
        assert client.post(path, json={"texts": [text]}).status_code == 200, (path, text)


def test_escaped_payload_within_the_advertised_limits_passes(client: httpx.Client) -> None:
    # Issue 12.6: within max_texts x max_chars, json.dumps's default escaping (6 bytes a CJK
    # character, 12 an emoji) must still fit the body limit, and the schema must say so.
    n, chars = SERVER_LIMITS["max_texts"], SERVER_LIMITS["max_chars"]
    for ch in ["\u4e2d", "\U0001f600", "\u0001"]:
        texts = ["fine " + ch * (chars - 5)] * n
        body = json.dumps({"texts": texts}).encode()  # ensure_ascii: the default
        assert len(body) > n * (chars - 5) * 6
        r = client.post("/noop", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 200 and r.json()["n"] == n, (repr(ch), r.text[:200])
    r = client.post("/predict/student_distilled@onnx", json={"texts": ["fine " + "\U0001f600" * (chars - 5)] * n})
    assert r.status_code == 200
    assert str(BODY_LIMIT) in client.get("/openapi.json").json()["info"]["description"]


def test_a_body_limit_below_the_text_limits_is_refused(live_server: LiveServer) -> None:
    from kdutils.serving.app import create_app, min_body_bytes, parse_args

    assert min_body_bytes(**SERVER_LIMITS) == BODY_LIMIT
    with pytest.raises(ValueError, match="max_body_bytes=1000 is below"):
        create_app(live_server.run.root, max_body_bytes=1000, **SERVER_LIMITS)
    with pytest.raises(SystemExit):
        parse_args(["--run", str(live_server.run.root), "--max-body-bytes", "1000"])


def test_a_body_that_stops_arriving_is_cut_off(live_server: LiveServer) -> None:
    # Issue 12.5: Content-Length 100, 8 bytes, then silence. The fixture's replica waits 2 s.
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(live_server.url)
    with socket.create_connection((u.hostname, u.port), timeout=20) as sock:
        t0 = time.perf_counter()
        sock.sendall(b"POST /predict/student_distilled HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"texts\"")
        received = b""
        while chunk := sock.recv(65536):  # b"": the server closed the connection
            received += chunk
        waited = time.perf_counter() - t0
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert b"within 2 s" in received
    assert 1.5 < waited < 10, waited
    # A slow but steady body within the deadline still gets its answer.
    with socket.create_connection((u.hostname, u.port), timeout=20) as sock:
        body = json.dumps({"texts": ["a fine film"]}).encode()
        sock.sendall(b"POST /noop HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 4):
            sock.sendall(body[i:i + 4])
            time.sleep(0.02)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")


def test_docs_are_served_without_a_cdn(client: httpx.Client) -> None:
    import re

    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)""", page.text) + re.findall(r"""url: *['"]([^'"]+)""", page.text)
    assert urls and all(u.startswith("/") for u in urls), urls  # nothing from another host
    for u in urls:
        r = client.get(u)
        assert r.status_code == 200 and len(r.content) > 100, u
    assert len(client.get("/static-docs/swagger-ui-bundle.js").content) > 500_000


def test_root_and_unknown_routes_point_to_the_docs(client: httpx.Client) -> None:
    root = client.get("/")
    assert root.status_code == 200 and root.json()["docs"] == "/docs" and root.json()["models"] == "/models"
    assert "student_distilled" in root.json()["serving"]
    for method, path in [("POST", "/predict"), ("GET", "/nowhere"), ("GET", "/predict/student_distilled")]:
        r = client.request(method, path)
        assert r.status_code in (404, 405), (path, r.status_code)
        assert "/docs" in r.json()["detail"] and "/models" in r.json()["detail"], r.text


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_a_body_that_is_not_json_is_named(client: httpx.Client, content_type: str) -> None:
    r = client.post("/predict/student_distilled", content=b'{"texts": ["fine"]}', headers={"content-type": content_type})
    assert r.status_code == 415, r.text
    assert content_type in r.json()["detail"] and "application/json" in r.json()["detail"]
    r = client.post("/noop", content=b'{"texts": ["fine"]}')  # no Content-Type at all
    assert r.status_code == 415 and "no Content-Type was sent" in r.json()["detail"]


def test_default_model_set(live_server: LiveServer) -> None:
    from kdutils.inference.predictors import discover
    from kdutils.serving.registry import DEFAULT_MODELS, resolve_models

    available = discover(live_server.run)
    assert resolve_models(available, None) == [m for m in DEFAULT_MODELS if m in available]
    assert set(resolve_models(available, None)) == {"student_distilled", "student_distilled@onnx", "teacher@onnx"}
    assert resolve_models(available, ["all"]) == list(available)
    with pytest.raises(LookupError, match=r"\['nope'\] not found; available: .*student_distilled"):
        resolve_models(available, ["nope"])
    with pytest.raises(LookupError, match="pass --models"):
        resolve_models({k: v for k, v in available.items() if k.startswith("student_baseline")}, None)


def test_cheap_calls_run_inline_only_when_alone(live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real uvicorn in this process (loopback), so the app's counters can be read.
    import uvicorn

    from kdutils.inference.predictors import Predictor
    from kdutils.serving.app import create_app
    from kdutils.serving.deploy import free_ports, wait_healthy

    # The cost estimate is injected, not measured: how fast a call runs depends on the machine
    # (a fast CPU made a measured estimate judge fewer calls cheap). The student costs 0.1 ms a
    # text, the teacher 50 ms; the first call of each has no estimate, as a fresh predictor's.
    real = Predictor.seconds_per_text
    monkeypatch.setattr(Predictor, "seconds_per_text", property(
        lambda self: None if real.fget(self) is None else (1e-4 if self.name.startswith("student") else 0.05)))
    counts = {}
    for inline_ms in (2.0, 0.0):
        app = create_app(live_server.run.root, models=["student_distilled@onnx", BROKEN], threads=1,
                         inline_ms=inline_ms, **SERVER_LIMITS)
        port = free_ports(1)[0]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, timeout=120)
            with httpx.Client(base_url=url, timeout=60) as c:
                for _ in range(6):  # one in flight; the first call has no cost estimate yet
                    assert c.post("/predict/student_distilled@onnx", json={"texts": ["a fine film"]}).status_code == 200
                cheap = app.state.inline_calls
                heavy = {"texts": ["a long , winding and very good film " * 60] * SERVER_LIMITS["max_texts"]}
                for _ in range(2):  # far over 2 ms: never on the event loop
                    assert c.post(f"/predict/{BROKEN}", json=heavy).status_code == 200
                counts[inline_ms] = (cheap, app.state.inline_calls)
        finally:
            server.should_exit = True
            thread.join(timeout=30)
    cheap, after_heavy = counts[2.0]
    assert cheap == 5 and after_heavy == cheap, counts  # all but the first, which has no estimate
    assert counts[0.0] == (0, 0)
