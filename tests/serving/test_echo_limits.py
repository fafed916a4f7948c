"""Issue 23 (minor): what a client sent is never echoed whole. A 60,000-character model name
or path comes back, in the answer and in the request log, cut at 200 characters."""

from __future__ import annotations

import time

import httpx
from serving_fixtures import LiveServer

from kdutils.serving.middleware import ECHO_CHARS

pytest_plugins = ("serving_fixtures",)


def _logged(live_server: LiveServer, needle: str, timeout: float = 15.0) -> list[str]:
    """The server log's lines holding ``needle``, once there are any: the request line is written
    after the answer is sent, so a busy machine may write it after the client has its answer."""
    deadline = time.monotonic() + timeout
    while True:
        log = live_server.proc.log_path.read_text()  # type: ignore[attr-defined]
        lines = [ln for ln in log.splitlines() if needle in ln]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def test_a_long_unknown_model_name_is_cut_in_the_answer_and_the_log(live_server: LiveServer) -> None:
    name = "m" * 59_990 + "TAILMARKER"
    r = httpx.post(live_server.url + f"/predict/{name}", json={"texts": ["fine"]}, timeout=30)
    assert r.status_code == 404
    detail = r.json()["detail"]
    assert "m" * ECHO_CHARS in detail and "m" * (ECHO_CHARS + 1) not in detail and "TAILMARKER" not in detail
    assert "60,000 characters" in detail and "available:" in detail
    lines = _logged(live_server, "/predict/mmm")
    assert lines and all(len(ln) < 2 * ECHO_CHARS + 200 and "TAILMARKER" not in ln for ln in lines)


def test_a_long_unknown_path_is_cut_in_the_answer_and_the_log(live_server: LiveServer) -> None:
    path = "/x" + "p" * 59_990 + "TAILMARKER"
    r = httpx.get(live_server.url + path, timeout=30)
    assert r.status_code == 404 and "TAILMARKER" not in r.text and len(r.text) < 1000
    lines = _logged(live_server, "/xppp")
    assert lines and all(len(ln) < 2 * ECHO_CHARS + 200 and "TAILMARKER" not in ln for ln in lines)
