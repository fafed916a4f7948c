"""Issue 23 (minor): what a client sent is never echoed whole. A 60,000-character model name
or path comes back, in the answer and in the request log, cut at 200 characters."""

from __future__ import annotations

import httpx
from serving_fixtures import LiveServer

from kdutils.serving.middleware import ECHO_CHARS

pytest_plugins = ("serving_fixtures",)


def test_a_long_unknown_model_name_is_cut_in_the_answer_and_the_log(live_server: LiveServer) -> None:
    name = "m" * 59_990 + "TAILMARKER"
    r = httpx.post(live_server.url + f"/predict/{name}", json={"texts": ["fine"]}, timeout=30)
    assert r.status_code == 404
    detail = r.json()["detail"]
    assert "m" * ECHO_CHARS in detail and "m" * (ECHO_CHARS + 1) not in detail and "TAILMARKER" not in detail
    assert "60,000 characters" in detail and "available:" in detail
    log = live_server.proc.log_path.read_text()  # type: ignore[attr-defined]
    lines = [ln for ln in log.splitlines() if "/predict/mmm" in ln]
    assert lines and all(len(ln) < 2 * ECHO_CHARS + 200 and "TAILMARKER" not in ln for ln in lines)


def test_a_long_unknown_path_is_cut_in_the_answer_and_the_log(live_server: LiveServer) -> None:
    path = "/x" + "p" * 59_990 + "TAILMARKER"
    r = httpx.get(live_server.url + path, timeout=30)
    assert r.status_code == 404 and "TAILMARKER" not in r.text and len(r.text) < 1000
    log = live_server.proc.log_path.read_text()  # type: ignore[attr-defined]
    assert "TAILMARKER" not in log
