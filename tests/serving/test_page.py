"""The page to try the models (issue 24): its routes over HTTP, and the page itself in headless Chromium.

The server is the serving tests' live replica (``serving_fixtures.live_server``: a uvicorn
subprocess on a loopback port serving every fixture model). The browser is Debian's
``/usr/bin/chromium`` driven by Playwright's Python package, which never downloads a browser.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from serving_fixtures import BROKEN, SERVER_LIMITS, LiveServer

from kdutils import plots
from kdutils.serving.page import PAGE_ASSETS, display_order, pick_examples, run_examples
from kdutils.serving.page_shot import CHROMIUM, CHROMIUM_ARGS, shoot

pytest_plugins = ("serving_fixtures",)

SENTENCE = "a gripping , beautifully acted film with a story that stays with you ."


@pytest.fixture(scope="module")
def client(live_server: LiveServer):
    with httpx.Client(base_url=live_server.url, timeout=60) as c:
        yield c


def test_display_order_is_teacher_truncations_students() -> None:
    names = ["student_distilled@onnx", "student_baseline", "teacher_L2", "teacher@onnx-int8", "student_original",
             "teacher_L12", "student_distilled", "teacher", "teacher_L4@onnx", "teacher@onnx"]
    assert sorted(names, key=display_order) == [
        "teacher", "teacher@onnx", "teacher@onnx-int8", "teacher_L12", "teacher_L4@onnx", "teacher_L2",
        "student_original", "student_baseline", "student_distilled", "student_distilled@onnx"]


def test_examples_take_each_class_in_turn() -> None:
    texts = ["bad " * 50, "a dull , lifeless film .", "a warm and funny film .", "too short", "bleak and slow going .",
             "a fine , moving piece of work ."]
    labels = [0, 0, 1, 1, 0, 1]
    got = pick_examples(texts, labels, ["negative", "positive"], n=3, chars=(12, 60))
    assert [(e.text, e.label) for e in got] == [("a dull , lifeless film .", "negative"),
                                               ("a warm and funny film .", "positive"),
                                               ("bleak and slow going .", "negative")]
    # A class with no sentence of a fitting length still gets its shortest one.
    assert pick_examples(["x" * 500, "y" * 400], [0, 1], ["a", "b"], n=2, chars=(1, 10))[1].text == "y" * 400


def test_a_run_without_splits_has_no_examples_and_says_why(tmp_path: Path) -> None:
    examples, note = run_examples(str(tmp_path / "run"))
    assert examples == [] and "no readable test split" in note


def test_page_routes(client: httpx.Client, live_server: LiveServer) -> None:
    page = client.get("/", headers={"accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    urls = re.findall(r"""(?:src|href)=["']([^"']+)""", page.text)
    assert {"/page/page.css", "/page/page.js"} <= set(urls)
    assert all(u.startswith("/") for u in urls), urls  # nothing from another host
    for name, media in PAGE_ASSETS.items():
        r = client.get(f"/page/{name}")
        assert r.status_code == 200 and r.headers["content-type"] == media and len(r.content) > 500
    assert client.get("/page/index.html").status_code == 404  # only the listed files
    assert client.get("/page/..%2Fpage.py").status_code == 404
    assert client.get("/").json()["page"]  # an API client still gets the JSON index

    info = client.get("/page/info").json()
    served = client.get("/healthz").json()["models"]
    assert [m["name"] for m in info["models"]] == sorted(served, key=display_order)
    teacher = next(m for m in info["models"] if m["name"] == "teacher@onnx-int8")
    assert (teacher["label"], teacher["runtime"]) == (plots.model_label("teacher"), "ONNX Runtime (int8)")
    assert teacher["label_names"] == live_server.fixture.label_names
    assert len(info["examples"]) == 4 and info["examples_note"] is None
    test_texts = {t.strip() for t in live_server.fixture.texts}
    assert all(e["text"] in test_texts for e in info["examples"])
    assert {e["label"] for e in info["examples"]} == set(live_server.fixture.label_names)


def test_predict_reports_the_model_time(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    fields = spec["components"]["schemas"]["PredictResponse"]["properties"]
    assert "model call" in fields["model_ms"]["description"]
    assert "/page/info" in spec["paths"]
    for model in ("student_distilled", "student_distilled@onnx", "teacher@onnx-int8"):
        body = client.post(f"/predict/{model}", json={"texts": [SENTENCE] * 3}).json()
        # The model call happens inside the server's time, which also counts any wait for a thread.
        assert 0 < body["model_ms"] <= body["latency_ms"], body


def test_batch_mates_share_their_batch_model_time(live_server: LiveServer) -> None:
    import asyncio

    import numpy as np

    from kdutils.inference.predictors import load_predictor
    from kdutils.serving.registry import MicroBatcher, ModelRunner

    predictor = load_predictor(live_server.run, "student_distilled@onnx", threads=1)
    texts = live_server.fixture.texts[:4]
    runner = ModelRunner(workers=2)

    async def run() -> tuple[list, list[int]]:
        runner.start()
        batcher = MicroBatcher(predictor.predict_nonempty, max_batch=64, runner=runner)
        try:
            # The first finds the model idle and runs alone; the other three wait and run as one batch.
            results = await asyncio.gather(*(batcher.submit_timed([t]) for t in texts))
            return results, list(batcher.batch_sizes)
        finally:
            batcher.cancel()
            runner.stop()

    results, sizes = asyncio.run(run())
    assert sizes == [1, 3], sizes
    seconds = [s for _, s in results]
    assert all(s > 0 for s in seconds) and seconds[1] == seconds[2] == seconds[3], seconds
    np.testing.assert_allclose(np.concatenate([logits for logits, _ in results]), predictor.predict_logits(texts),
                               atol=1e-5)


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium is not installed at /usr/bin/chromium "
                                                  "(make sysdeps installs Debian's chromium)")
def test_page_in_headless_chromium(client: httpx.Client, live_server: LiveServer, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url = live_server.url
    served = sorted(client.get("/healthz").json()["models"], key=display_order)
    labels = live_server.fixture.label_names
    outside: list[str] = []  # requests to anywhere but this server
    failed: list[str] = []   # requests of the page that failed once the models are loaded
    health_calls = {"n": 0}

    def loading_at_first(route) -> None:
        # The replica is already loaded: answer the page's first health checks as a loading server does.
        health_calls["n"] += 1
        if health_calls["n"] <= 2:
            route.fulfill(status=503, json={"status": "loading", "models": served[:1], "detail": None})
        else:
            route.continue_()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda r: None if r.url.startswith(url) else outside.append(r.url))
            page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
            page.route(f"{url}/healthz", loading_at_first)
            page.goto(url + "/")

            # While the models load the page says so, and cannot be sent.
            expect(page.locator("#status")).to_contain_text("Loading the models", timeout=5000)
            expect(page.locator("#send")).to_be_disabled()
            expect(page.locator("#examples button")).to_have_count(4)
            # Then it fills in: one card per served model, in the page's order, named as the paper names them.
            expect(page.locator("#status")).to_contain_text(f"Ready: {len(served)} models", timeout=10000)
            page.on("response", lambda r: failed.append(f"{r.url}: {r.status}") if r.status >= 400 else None)
            cards = page.locator(".card")
            assert cards.evaluate_all("cs => cs.map(c => c.dataset.model)") == served
            assert cards.locator("h2").all_inner_texts() == [plots.model_label(n.split("@")[0]) for n in served]

            # Type a sentence, press Enter: every card shows the API's label and probabilities.
            box = page.get_by_label("Sentence")
            box.press_sequentially(SENTENCE)
            box.press("Enter")
            expect(page.locator("#status")).to_have_text(f"All {len(served)} models answered.", timeout=20000)
            assert box.input_value() == SENTENCE  # Enter sent it rather than starting a new line
            for name in served:
                api = client.post(f"/predict/{name}", json={"texts": [SENTENCE]}).json()["predictions"][0]
                card = page.locator(f'.card[data-model="{name}"]')
                assert card.locator(".label").inner_text() == api["label"], name
                rows = card.locator(".prob")
                assert rows.evaluate_all("rs => rs.map(r => r.dataset.class)") == labels
                shown = rows.evaluate_all("rs => rs.map(r => Number(r.dataset.probability))")
                assert shown == pytest.approx([api["probabilities"][c] for c in labels], abs=1e-6), name
                assert rows.locator(".pct").all_inner_texts() == [f"{100 * api['probabilities'][c]:.1f}%" for c in labels]
                # Each bar is as long as its probability.
                bars = rows.evaluate_all("rs => rs.map(r => r.querySelector('.fill').getBoundingClientRect().width"
                                         " / r.querySelector('.track').getBoundingClientRect().width)")
                assert bars == pytest.approx([api["probabilities"][c] for c in labels], abs=0.02), name
                assert re.fullmatch(r"model [\d.]+ ms · in the server [\d.]+ ms · round trip [\d.]+ ms",
                                    card.locator(".timing").inner_text()), name
            assert failed == [], failed
            page.screenshot(path=str(tmp_path / "try_page.png"), full_page=True)

            # An example is one click away, and sends itself.
            first = page.locator("#examples button").first
            first.click()
            expect(page.locator("#status")).to_have_text(f"All {len(served)} models answered.", timeout=20000)
            assert box.input_value() == first.inner_text()

            # A whitespace-only text: every card shows the server's message, none is blank.
            box.fill(" \n\t ")
            box.press("Enter")
            expect(page.locator("#status")).to_contain_text(f"0 of {len(served)} models answered", timeout=20000)
            errors = page.locator(".card .error").all_inner_texts()
            assert len(errors) == len(served)
            assert all(e.startswith("HTTP 422") and "empty after stripping whitespace" in e for e in errors), errors
            assert page.locator(".card .prob").count() == 0

            # A text over the body limit (413) says so too.
            box.fill("a" * (SERVER_LIMITS["max_chars"] * 120))
            page.locator("#send").click()
            expect(page.locator("#status")).to_contain_text(f"0 of {len(served)} models answered", timeout=20000)
            errors = page.locator(".card .error").all_inner_texts()
            assert len(errors) == len(served) and all(e.startswith("HTTP 413") for e in errors), errors[:2]

            # Phone width: one column, nothing wider than the screen.
            page.set_viewport_size({"width": 375, "height": 800})
            box.fill("dull .")
            box.press("Enter")
            expect(page.locator("#status")).to_have_text(f"All {len(served)} models answered.", timeout=20000)
            assert page.evaluate("document.documentElement.scrollWidth") <= 375
            page.screenshot(path=str(tmp_path / "try_page_phone.png"), full_page=True)
        finally:
            browser.close()
    # The README's picture is made the same way (python -m kdutils.serving.page_shot).
    assert shoot(url, tmp_path / "shot.png", text="dull .").stat().st_size > 20_000
    assert (tmp_path / "try_page.png").stat().st_size > 20_000
    assert outside == [], outside  # the page fetched nothing from another host
    assert [f for f in failed if "413" not in f and "422" not in f] == [], failed
    assert BROKEN in served  # a teacher truncation among the cards
